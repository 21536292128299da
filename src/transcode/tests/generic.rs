//! Rule features timesheets.proto does not use, on a throwaway service:
//! nested path fields, `**`, repeated and enum query parameters, custom
//! methods, and the startup errors (conflicts, bad fields, streaming).

use prost_reflect::DescriptorPool;

use super::{fake, http, pool_with, raw_reply, send};
use crate::transcode::{TranscodeOptions, Transcoder};

const SERVICE: &str = "test.v1.Things";

/// A file with `Parent`, `Thing` and a `Things` service whose methods are
/// `methods` (JSON `MethodDescriptorProto`s).
fn test_pool(methods: &str) -> DescriptorPool {
    let field = |name: &str, number: u32, label: &str, kind: &str, type_name: &str| {
        let type_name = if type_name.is_empty() {
            String::new()
        } else {
            format!(r#","typeName":"{type_name}""#)
        };
        format!(
            r#"{{"name":"{name}","number":{number},"label":"LABEL_{label}","type":"TYPE_{kind}"{type_name}}}"#
        )
    };
    let parent = [
        field("id", 1, "OPTIONAL", "STRING", ""),
        field("display_name", 2, "OPTIONAL", "STRING", ""),
    ];
    let thing = [
        field("parent", 1, "OPTIONAL", "MESSAGE", ".test.v1.Parent"),
        field("name", 2, "OPTIONAL", "STRING", ""),
        field("tags", 3, "REPEATED", "STRING", ""),
        field("big", 4, "OPTIONAL", "INT64", ""),
        field("color", 5, "OPTIONAL", "ENUM", ".test.v1.Color"),
        field("flag", 6, "OPTIONAL", "BOOL", ""),
    ];
    pool_with(&format!(
        r#"{{
            "name": "test/v1/things.proto",
            "package": "test.v1",
            "dependency": ["google/api/annotations.proto"],
            "syntax": "proto3",
            "messageType": [
                {{"name": "Parent", "field": [{}]}},
                {{"name": "Thing", "field": [{}]}}
            ],
            "enumType": [{{"name": "Color", "value": [
                {{"name": "COLOR_UNSPECIFIED", "number": 0}},
                {{"name": "RED", "number": 1}},
                {{"name": "GREEN", "number": 2}}
            ]}}],
            "service": [{{"name": "Things", "method": [{methods}]}}]
        }}"#,
        parent.join(","),
        thing.join(",")
    ))
}

fn method(name: &str, rule: &str) -> String {
    format!(
        r#"{{"name":"{name}","inputType":".test.v1.Thing","outputType":".test.v1.Thing","options":{{"[google.api.http]":{rule}}}}}"#
    )
}

fn transcoder(methods: &[String]) -> anyhow::Result<Transcoder> {
    Transcoder::new(
        &test_pool(&methods.join(",")),
        &[SERVICE],
        TranscodeOptions::default(),
    )
}

/// Sends `request` to a service that echoes the request message back.
async fn echo(methods: &[String], request: http::Request<axum::body::Body>) -> super::Answer {
    let (grpc, _) = fake(|received| raw_reply(&received.message));
    send(transcoder(methods).expect("rules are valid"), grpc, request).await
}

#[tokio::test]
async fn nested_path_fields_multi_segment_values_and_typed_query_parameters() {
    let methods = [method(
        "GetThing",
        r#"{"get":"/v1/{parent.id}/things/{name=**}"}"#,
    )];
    let uri = "/v1/p1/things/a/b%2Fc?tags=x&tags=y&big=9007199254740993&color=GREEN&flag=true&parent.displayName=D";
    let answer = echo(&methods, http("GET", uri, "")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["parent"]["id"], "p1");
    assert_eq!(
        json["parent"]["display_name"], "D",
        "dot paths accept camelCase parts"
    );
    assert_eq!(json["name"], "a/b%2Fc", "** keeps an encoded slash encoded");
    assert_eq!(
        json["tags"],
        serde_json::json!(["x", "y"]),
        "repeated keys fill a list"
    );
    assert_eq!(
        json["big"], "9007199254740993",
        "int64 stays exact and is written as a string"
    );
    assert_eq!(json["color"], "GREEN");
    assert_eq!(json["flag"], true);
}

#[tokio::test]
async fn a_path_field_inside_the_body_field_is_set_from_the_path() {
    // AIP-134's update: the resource in the body, its name in the path.
    let methods = [method(
        "UpdateParent",
        r#"{"patch":"/v1/parents/{parent.id}","body":"parent"}"#,
    )];
    let body = r#"{"id":"other","displayName":"D"}"#;
    let answer = echo(&methods, http("PATCH", "/v1/parents/p1", body)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let json = answer.json();
    assert_eq!(json["parent"]["id"], "p1", "the path's value wins");
    assert_eq!(json["parent"]["display_name"], "D");
    let answer = echo(
        &methods,
        http("PATCH", "/v1/parents/p1?parent.displayName=E", "{}"),
    )
    .await;
    assert_eq!(
        answer.status, 400,
        "the body field is not set from the query"
    );
}

#[tokio::test]
async fn enums_in_the_query_take_names_or_numbers() {
    let methods = [method("ListThings", r#"{"get":"/v1/things"}"#)];
    let answer = echo(&methods, http("GET", "/v1/things?color=1", "")).await;
    assert_eq!(answer.json()["color"], "RED");
    let answer = echo(&methods, http("GET", "/v1/things?color=PURPLE", "")).await;
    assert_eq!(answer.status, 400);
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("COLOR_UNSPECIFIED, RED, GREEN"),
        "{message}"
    );
    let answer = echo(&methods, http("GET", "/v1/things?parent=x", "")).await;
    assert_eq!(answer.status, 400, "a message needs a dot path");
}

#[tokio::test]
async fn custom_methods_and_additional_bindings_route() {
    let methods = [method(
        "PurgeThing",
        r#"{"custom":{"kind":"PURGE","path":"/v1/things/{name}"},"additional_bindings":[{"post":"/v1/things/{name}:purge","body":"*"}]}"#,
    )];
    let answer = echo(&methods, http("PURGE", "/v1/things/t1", "")).await;
    assert_eq!(answer.json()["name"], "t1");
    let answer = echo(
        &methods,
        http("POST", "/v1/things/t2:purge", r#"{"flag":true}"#),
    )
    .await;
    assert_eq!(answer.json()["name"], "t2");
    assert_eq!(answer.json()["flag"], true);
}

#[tokio::test]
async fn a_body_field_that_is_a_list_takes_a_json_array() {
    let methods = [method(
        "TagThing",
        r#"{"post":"/v1/things/{name}:tag","body":"tags"}"#,
    )];
    let answer = echo(&methods, http("POST", "/v1/things/t1:tag", r#"["a","b"]"#)).await;
    assert_eq!(answer.json()["tags"], serde_json::json!(["a", "b"]));
}

#[test]
fn invalid_rules_are_startup_errors() {
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "the same shape twice",
            vec![
                method("A", r#"{"get":"/v1/things/{name}"}"#),
                method("B", r#"{"get":"/v1/things/{big}"}"#),
            ],
            "conflicting",
        ),
        (
            "a conflict inside additional_bindings",
            vec![method(
                "A",
                r#"{"get":"/v1/x","additional_bindings":[{"get":"/v1/x"}]}"#,
            )],
            "conflicting",
        ),
        (
            "an unknown path field",
            vec![method("A", r#"{"get":"/v1/{nope}"}"#)],
            "has no field nope",
        ),
        (
            "a repeated path field",
            vec![method("A", r#"{"get":"/v1/{tags}"}"#)],
            "repeated",
        ),
        (
            "a message path field",
            vec![method("A", r#"{"get":"/v1/{parent}"}"#)],
            "cannot be bound",
        ),
        (
            "an unknown body field",
            vec![method("A", r#"{"post":"/v1/x","body":"nope"}"#)],
            "body field nope",
        ),
        (
            "a body field also in the path",
            vec![method("A", r#"{"post":"/v1/{name}","body":"name"}"#)],
            "also bound",
        ),
        (
            "an unknown response_body",
            vec![method("A", r#"{"get":"/v1/x","response_body":"nope"}"#)],
            "response_body",
        ),
        (
            "a bad template",
            vec![method("A", r#"{"get":"/v1/**/x"}"#)],
            "last segment",
        ),
        (
            "no pattern",
            vec![method("A", r#"{"body":"*"}"#)],
            "no pattern",
        ),
        (
            "a streaming method",
            vec![
                method("A", r#"{"get":"/v1/x"}"#)
                    .replace(r#""name":"A""#, r#""name":"A","serverStreaming":true"#),
            ],
            "streaming",
        ),
    ];
    for (description, methods, needle) in cases {
        let err = match transcoder(&methods) {
            Ok(_) => panic!("{description}: accepted"),
            Err(err) => format!("{err:#}"),
        };
        assert!(err.contains(needle), "{description}: {err}");
    }
}

#[test]
fn the_same_path_for_different_methods_is_no_conflict() {
    let methods = [
        method("GetThing", r#"{"get":"/v1/things/{name}"}"#),
        method("DeleteThing", r#"{"delete":"/v1/things/{name}"}"#),
        method("NoRule", "{}").replace(r#","options":{"[google.api.http]":{}}"#, ""),
    ];
    let transcoder = transcoder(&methods).expect("valid");
    assert_eq!(
        transcoder.bindings().len(),
        2,
        "a method without a rule has no binding"
    );
}

#[test]
fn head_takes_a_get_binding_unless_a_head_binding_matches() {
    use crate::transcode::routes::Lookup;
    let rpc_of = |lookup: Lookup<'_>| match lookup {
        Lookup::Found { binding, .. } => binding.rpc.name().to_owned(),
        other => panic!("{other:?}"),
    };
    let methods = [
        method("GetThing", r#"{"get":"/v1/things/fixed"}"#),
        method(
            "HeadThing",
            r#"{"custom":{"kind":"HEAD","path":"/v1/things/{name}"}}"#,
        ),
        method("ListThings", r#"{"get":"/v1/things"}"#),
    ];
    let transcoder = transcoder(&methods).expect("rules are valid");
    let routes = &transcoder.routes;
    // The HEAD binding wins though the GET template is more specific.
    assert_eq!(
        rpc_of(routes.lookup(&http::Method::HEAD, "/v1/things/fixed")),
        "HeadThing"
    );
    assert_eq!(
        rpc_of(routes.lookup(&http::Method::GET, "/v1/things/fixed")),
        "GetThing"
    );
    // Without one, HEAD is served by GET.
    assert_eq!(
        rpc_of(routes.lookup(&http::Method::HEAD, "/v1/things")),
        "ListThings"
    );
    match routes.lookup(&http::Method::POST, "/v1/things") {
        Lookup::WrongMethod { allow } => assert_eq!(allow, [http::Method::GET, http::Method::HEAD]),
        other => panic!("{other:?}"),
    }
}
