use super::paths::segments_regex;
use super::*;
use crate::{
    proto::{SERVICE_NAME, descriptor_pool},
    transcode::{Transcoder, tests::pool_with},
};

const SCOPE_OPTION: &str = "timesheets.v1.required_scope";

fn info() -> OpenApiInfo {
    OpenApiInfo {
        title: "Timesheets".into(),
        version: "1.0.0".into(),
        scope_option: Some(SCOPE_OPTION.into()),
        token_url: "https://YOUR_TENANT.auth0.com/oauth/token".into(),
    }
}

fn timesheets() -> (Transcoder, Value) {
    let transcoder = Transcoder::new(
        descriptor_pool(),
        &[SERVICE_NAME],
        TranscodeOptions::default(),
    )
    .expect("timesheets.proto transcodes");
    let doc = transcoder.openapi(&info());
    (transcoder, doc)
}

fn operation<'d>(doc: &'d Value, path: &str, method: &str) -> &'d Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is documented");
    op
}

fn schema<'d>(doc: &'d Value, message: &str) -> &'d Value {
    &doc["components"]["schemas"][message]
}

#[test]
fn every_binding_is_one_operation_with_its_method_and_a_unique_id() {
    let (transcoder, doc) = timesheets();
    let bindings = transcoder.bindings();
    let mut ids = HashSet::new();
    for (method, template, grpc) in &bindings {
        let (path, _) = openapi_path(template);
        let op = operation(&doc, &path, &method.as_str().to_ascii_lowercase());
        assert_eq!(op["x-grpc-method"], grpc.as_str(), "{method} {template}");
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "{id} is unique");
    }
    let operations: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().expect("path item").len())
        .sum();
    assert_eq!(operations, bindings.len());
    assert!(doc.get("x-omitted-bindings").is_none());
    assert_eq!(
        operation(&doc, "/v1/timesheets", "post")["operationId"],
        "TimesheetService_CreateTimesheet"
    );
    assert_eq!(
        operation(&doc, "/timesheets", "post")["operationId"],
        "TimesheetService_CreateTimesheet_2",
        "the additional binding gets a suffix"
    );
}

#[test]
fn the_document_is_openapi_3_1_json_described_by_the_service_comment() {
    let (_, doc) = timesheets();
    let text = serde_json::to_string(&doc).expect("serializes");
    let reparsed: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(reparsed, doc);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Timesheets");
    let description = doc["info"]["description"].as_str().expect("description");
    assert!(
        description.starts_with("Employees log the hours"),
        "{description}"
    );
    assert!(!description.contains("//"), "comment markers are stripped");
    assert_eq!(doc["tags"][0]["name"], "TimesheetService");
}

#[test]
fn the_bare_array_list_is_an_array_of_timesheets_with_a_link_header() {
    let (_, doc) = timesheets();
    let ok = &operation(&doc, "/timesheets", "get")["responses"]["200"];
    assert_eq!(
        ok["content"][JSON]["schema"],
        json!({"type": "array", "items": {"$ref": "#/components/schemas/timesheets.v1.Timesheet"}})
    );
    assert!(ok["headers"]["Link"].is_object(), "{ok}");
    let wrapped = &operation(&doc, "/v1/timesheets", "get")["responses"]["200"];
    assert_eq!(
        wrapped["content"][JSON]["schema"]["$ref"],
        "#/components/schemas/timesheets.v1.ListTimesheetsResponse"
    );
    assert!(wrapped.get("headers").is_none(), "the token is in the body");
    let names: Vec<&str> = operation(&doc, "/timesheets", "get")["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "page_size",
            "page_token",
            "start_date",
            "end_date",
            "project"
        ]
    );
}

#[test]
fn a_custom_verb_path_keeps_its_verb_and_its_path_parameter() {
    let (_, doc) = timesheets();
    let op = operation(&doc, "/v1/timesheets/{id}:approve", "post");
    assert_eq!(
        op["parameters"],
        json!([{
            "name": "id", "in": "path", "required": true,
            "description": "The id of the timesheet.", "schema": {"type": "string"},
        }]),
        "body \"*\" leaves no query parameters"
    );
    assert_eq!(
        op["requestBody"]["required"], false,
        "an empty body is accepted"
    );
    assert_eq!(
        op["requestBody"]["content"][JSON]["schema"]["properties"],
        json!({}),
        "the path sets the request's one field, the id"
    );
    assert!(operation(&doc, "/approvals/{id}", "put").is_object());
}

/// The path wins over the body, so a body schema leaves out the fields
/// the path sets, at any depth, and keeps references to the rest.
#[test]
fn a_request_body_schema_leaves_out_the_fields_its_path_sets() {
    let doc = generic();
    let body = |path: &str| {
        operation(&doc, path, "post")["requestBody"]["content"][JSON]["schema"].clone()
    };
    let owner = body("/v1/owners/{owner.id}/gadgets:move");
    assert_eq!(owner["type"], "object");
    assert!(owner["properties"].get("id").is_none(), "{owner}");
    assert_eq!(owner["properties"]["since"]["format"], "date-time");
    assert_eq!(
        owner["properties"]["owner"]["$ref"], "#/components/schemas/test.v1.Owner",
        "the owner's owner is not bound here"
    );
    let gadget = body("/v1/{owner.owner.id}/gadgets/{name}:rename");
    assert!(gadget["properties"].get("name").is_none(), "{gadget}");
    assert_eq!(gadget["properties"]["count"]["format"], "int64");
    let inner = &gadget["properties"]["owner"]["properties"]["owner"];
    assert!(inner["properties"].get("id").is_none(), "{inner}");
    assert_eq!(inner["properties"]["since"]["format"], "date-time");
    assert!(
        schema(&doc, "test.v1.Owner")["properties"]
            .get("id")
            .is_some(),
        "the shared schema keeps every field"
    );
}

#[test]
fn statuses_follow_the_binding_with_location_on_created_and_nothing_on_no_content() {
    let (_, doc) = timesheets();
    let created = &operation(&doc, "/v1/timesheets", "post")["responses"];
    assert!(
        created["201"]["headers"]["Location"].is_object(),
        "{created}"
    );
    assert!(created.get("200").is_none());
    let deleted = &operation(&doc, "/v1/timesheets/{id}", "delete")["responses"]["204"];
    assert!(deleted.get("content").is_none(), "{deleted}");
    let responses = &operation(&doc, "/v1/timesheets/{id}", "get")["responses"];
    for status in ["400", "401", "403", "404", "409", "503", "default"] {
        assert!(
            responses[status]["$ref"].is_string(),
            "{status}: {responses}"
        );
    }
    let shared = &doc["components"]["responses"];
    assert!(shared["Unauthenticated"]["headers"]["WWW-Authenticate"].is_object());
    assert!(shared["PermissionDenied"]["headers"]["WWW-Authenticate"].is_object());
    assert!(shared["Unavailable"]["headers"]["Retry-After"].is_object());
    assert_eq!(
        shared["NotFound"]["content"][JSON]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    let error = &schema(&doc, "Error")["properties"]["error"]["properties"];
    assert_eq!(error["details"]["items"]["required"], json!(["@type"]));
}

#[test]
fn each_operation_requires_the_scope_its_method_option_names() {
    let (_, doc) = timesheets();
    let op = operation(&doc, "/v1/timesheets", "post");
    assert_eq!(
        op["security"],
        json!([{"oauth2": ["create:timesheets"]}, {"bearerAuth": []}])
    );
    assert_eq!(op["x-required-scope"], "create:timesheets");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["bearerFormat"], "JWT");
    let flow = &schemes["oauth2"]["flows"]["clientCredentials"];
    assert_eq!(
        flow["tokenUrl"],
        "https://YOUR_TENANT.auth0.com/oauth/token"
    );
    let mut scopes: Vec<&str> = flow["scopes"]
        .as_object()
        .expect("scopes")
        .keys()
        .map(String::as_str)
        .collect();
    scopes.sort_unstable();
    assert_eq!(
        scopes,
        [
            "approve:timesheets",
            "batch:upload",
            "create:timesheets",
            "delete:timesheets",
            "read:timesheets"
        ]
    );
}

#[test]
fn without_a_scope_option_operations_list_no_scopes() {
    let transcoder = Transcoder::new(
        descriptor_pool(),
        &[SERVICE_NAME],
        TranscodeOptions::default(),
    )
    .expect("timesheets.proto transcodes");
    let doc = transcoder.openapi(&OpenApiInfo {
        scope_option: None,
        ..info()
    });
    let op = operation(&doc, "/v1/timesheets", "post");
    assert_eq!(op["security"], json!([{"oauth2": []}, {"bearerAuth": []}]));
    assert!(op.get("x-required-scope").is_none());
}

#[test]
fn descriptions_and_summaries_come_from_the_proto_comments() {
    let (_, doc) = timesheets();
    let timesheet = schema(&doc, "timesheets.v1.Timesheet");
    let hours = timesheet["properties"]["hours"]["description"]
        .as_str()
        .expect("hours description");
    assert!(hours.contains("24"), "{hours}");
    assert_eq!(
        timesheet["description"],
        "Hours one employee worked on one project on one day."
    );
    let op = operation(&doc, "/v1/timesheets", "post");
    assert_eq!(op["summary"], "Logs hours for the calling employee.");
    let description = op["description"].as_str().expect("description");
    assert!(description.contains("\ncreation time"), "{description}");
    assert!(
        !description.contains("\n "),
        "one leading space per line is stripped"
    );
    assert_eq!(op["tags"], json!(["TimesheetService"]));
}

#[test]
fn scalar_and_timestamp_fields_map_to_their_proto3_json_forms() {
    let (_, doc) = timesheets();
    let fields = &schema(&doc, "timesheets.v1.Timesheet")["properties"];
    assert_eq!(fields["hours"]["type"], json!(["number", "string"]));
    assert_eq!(fields["approved"]["type"], "boolean");
    assert_eq!(
        fields["user_id"]["type"], "string",
        "proto field names by default"
    );
    assert_eq!(fields["create_time"]["type"], "string");
    assert_eq!(fields["create_time"]["format"], "date-time");
    let list = &schema(&doc, "timesheets.v1.ListTimesheetsResponse")["properties"];
    assert_eq!(list["timesheets"]["type"], "array");
    assert!(schema(&doc, "timesheets.v1.Timesheet")["required"].is_null());
}

#[test]
fn camel_case_options_rename_properties_and_query_parameters() {
    let transcoder = Transcoder::new(
        descriptor_pool(),
        &[SERVICE_NAME],
        TranscodeOptions {
            json_names: JsonNames::Camel,
            ..TranscodeOptions::default()
        },
    )
    .expect("timesheets.proto transcodes");
    let doc = transcoder.openapi(&info());
    assert!(schema(&doc, "timesheets.v1.Timesheet")["properties"]["userId"].is_object());
    let op = operation(&doc, "/v1/timesheets", "get");
    assert_eq!(op["parameters"][0]["name"], "pageSize");
}

/// A service with what timesheets.proto lacks: int64, enums, maps,
/// nested path fields, `**` and sub-patterns.
fn generic() -> Value {
    let pool = pool_with(
        r#"{
        "name": "test/v1/gadgets.proto",
        "package": "test.v1",
        "dependency": ["google/api/annotations.proto", "google/protobuf/timestamp.proto"],
        "syntax": "proto3",
        "messageType": [
            {"name": "Owner", "field": [
                {"name": "id", "number": 1, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING"},
                {"name": "since", "number": 2, "label": "LABEL_OPTIONAL", "type": "TYPE_MESSAGE", "typeName": ".google.protobuf.Timestamp"},
                {"name": "owner", "number": 3, "label": "LABEL_OPTIONAL", "type": "TYPE_MESSAGE", "typeName": ".test.v1.Owner"}
            ]},
            {"name": "Gadget", "field": [
                {"name": "owner", "number": 1, "label": "LABEL_OPTIONAL", "type": "TYPE_MESSAGE", "typeName": ".test.v1.Owner"},
                {"name": "name", "number": 2, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING"},
                {"name": "count", "number": 3, "label": "LABEL_OPTIONAL", "type": "TYPE_INT64"},
                {"name": "serial", "number": 4, "label": "LABEL_OPTIONAL", "type": "TYPE_UINT64"},
                {"name": "level", "number": 5, "label": "LABEL_OPTIONAL", "type": "TYPE_ENUM", "typeName": ".test.v1.Level"},
                {"name": "tags", "number": 6, "label": "LABEL_REPEATED", "type": "TYPE_STRING"},
                {"name": "labels", "number": 7, "label": "LABEL_REPEATED", "type": "TYPE_MESSAGE", "typeName": ".test.v1.Gadget.LabelsEntry"},
                {"name": "ratio", "number": 8, "label": "LABEL_OPTIONAL", "type": "TYPE_FLOAT"},
                {"name": "blob", "number": 9, "label": "LABEL_OPTIONAL", "type": "TYPE_BYTES"},
                {"name": "path", "number": 10, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING"}
            ], "nestedType": [{"name": "LabelsEntry", "options": {"mapEntry": true}, "field": [
                {"name": "key", "number": 1, "label": "LABEL_OPTIONAL", "type": "TYPE_STRING"},
                {"name": "value", "number": 2, "label": "LABEL_OPTIONAL", "type": "TYPE_INT32"}
            ]}]}
        ],
        "enumType": [{"name": "Level", "value": [
            {"name": "LEVEL_UNSPECIFIED", "number": 0}, {"name": "HIGH", "number": 1}
        ]}],
        "service": [{"name": "Gadgets", "method": [
            {"name": "GetGadget", "inputType": ".test.v1.Gadget", "outputType": ".test.v1.Gadget",
             "options": {"[google.api.http]": {"get": "/v1/{owner.id}/gadgets/{name=items/*}"}}},
            {"name": "ReadFile", "inputType": ".test.v1.Gadget", "outputType": ".test.v1.Gadget",
             "options": {"[google.api.http]": {"get": "/v1/files/{path=**}"}}},
            {"name": "GetItem", "inputType": ".test.v1.Gadget", "outputType": ".test.v1.Gadget",
             "options": {"[google.api.http]": {"get": "/v1/{name=items/*}",
               "additional_bindings": [{"get": "/v1/{name=things/*}"}, {"delete": "/v1/{path=keys/*}"}]}}},
            {"name": "PurgeGadget", "inputType": ".test.v1.Gadget", "outputType": ".test.v1.Gadget",
             "options": {"[google.api.http]": {"custom": {"kind": "PURGE", "path": "/v1/gadgets/{name}"}}}},
            {"name": "MoveGadget", "inputType": ".test.v1.Gadget", "outputType": ".test.v1.Gadget",
             "options": {"[google.api.http]": {"post": "/v1/owners/{owner.id}/gadgets:move", "body": "owner"}}},
            {"name": "RenameGadget", "inputType": ".test.v1.Gadget", "outputType": ".test.v1.Gadget",
             "options": {"[google.api.http]": {"post": "/v1/{owner.owner.id}/gadgets/{name}:rename", "body": "*"}}}
        ]}]
    }"#,
    );
    Transcoder::new(&pool, &["test.v1.Gadgets"], TranscodeOptions::default())
        .expect("test service transcodes")
        .openapi(&OpenApiInfo {
            scope_option: Some(SCOPE_OPTION.into()),
            ..info()
        })
}

#[test]
fn sixty_four_bit_integers_are_strings_or_integers_and_other_kinds_map_too() {
    let doc = generic();
    let fields = &schema(&doc, "test.v1.Gadget")["properties"];
    assert_eq!(fields["count"]["type"], json!(["string", "integer"]));
    assert_eq!(fields["count"]["format"], "int64");
    assert_eq!(fields["serial"]["format"], "uint64");
    assert_eq!(fields["ratio"]["type"], json!(["number", "string"]));
    assert_eq!(
        fields["level"]["enum"],
        json!(["LEVEL_UNSPECIFIED", "HIGH"])
    );
    assert_eq!(fields["tags"]["items"]["type"], "string");
    assert_eq!(fields["labels"]["type"], "object");
    assert_eq!(fields["labels"]["additionalProperties"]["format"], "int32");
    assert_eq!(fields["blob"]["format"], "byte");
    assert_eq!(
        fields["owner"]["$ref"],
        "#/components/schemas/test.v1.Owner"
    );
    let owner = &schema(&doc, "test.v1.Owner")["properties"];
    assert_eq!(owner["since"]["format"], "date-time");
    assert_eq!(owner["owner"]["$ref"], "#/components/schemas/test.v1.Owner");
}

#[test]
fn nested_and_patterned_path_variables_and_dotted_query_parameters() {
    let doc = generic();
    let op = operation(&doc, "/v1/{owner.id}/gadgets/{name}", "get");
    let parameters = op["parameters"].as_array().expect("parameters");
    let find = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {parameters:?}"))
    };
    assert_eq!(find("owner.id")["in"], "path");
    assert_eq!(find("name")["schema"]["pattern"], "^items/[^/]+$");
    assert_eq!(find("owner.since")["in"], "query");
    assert_eq!(find("owner.since")["schema"]["format"], "date-time");
    assert_eq!(find("owner.owner.id")["in"], "query");
    assert!(
        parameters
            .iter()
            .all(|p| p["name"] != "owner.owner.owner.id"),
        "recursion stops at three levels"
    );
    assert_eq!(find("tags")["schema"]["type"], "array");
    assert_eq!(find("level")["schema"]["enum"][1], "HIGH");
    assert!(
        parameters.iter().all(|p| p["name"] != "labels"),
        "maps are not query parameters"
    );
    assert!(parameters.iter().all(|p| p["name"] != "owner"));
    let files = operation(&doc, "/v1/files/{path}", "get");
    assert_eq!(files["parameters"][0]["schema"]["pattern"], "^.*$");
    assert_eq!(files["x-required-scope"], Value::Null, "no scope declared");
    assert_eq!(files["security"][0], json!({"oauth2": []}));
}

#[test]
fn bindings_openapi_cannot_express_are_listed_with_the_reason() {
    let doc = generic();
    let omitted = doc["x-omitted-bindings"]
        .as_array()
        .expect("omitted bindings");
    let templates: Vec<&str> = omitted
        .iter()
        .map(|b| b["template"].as_str().expect("template"))
        .collect();
    assert_eq!(
        templates,
        [
            "/v1/{name=things/*}",
            "/v1/{path=keys/*}",
            "/v1/gadgets/{name}"
        ],
        "{omitted:?}"
    );
    assert!(
        operation(&doc, "/v1/{name}", "get").is_object(),
        "the first one stays"
    );
    assert!(doc["paths"]["/v1/{path}"].is_null());
    assert_eq!(omitted[2]["method"], "PURGE");
}

#[test]
fn templates_become_openapi_paths() {
    let cases = [
        ("/v1/timesheets", "/v1/timesheets", 0),
        (
            "/v1/timesheets/{id}:approve",
            "/v1/timesheets/{id}:approve",
            1,
        ),
        ("/v1/{name=shelves/*/books/*}", "/v1/{name}", 1),
        ("/v1/{a.b}/x/{c=**}", "/v1/{a.b}/x/{c}", 2),
        ("/v1/*/x:do", "/v1/{_wildcard1}/x:do", 1),
    ];
    for (template, path, count) in cases {
        let (got, variables) = openapi_path(template);
        assert_eq!(got, path, "{template}");
        assert_eq!(variables.len(), count, "{template}");
    }
    assert_eq!(segments_regex("v1.0/*/**"), r"^v1\.0/[^/]+/.*$");
}

/// Writes the document for an external validator:
/// `cargo test --lib transcode::openapi -- --ignored` then
/// `openapi-spec-validator target/openapi.json`.
#[test]
#[ignore = "writes a file for openapi-spec-validator"]
fn write_the_document_for_the_validator() {
    let (_, doc) = timesheets();
    let out = std::env::var("OPENAPI_OUT")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target/openapi.json").to_owned());
    let out = std::path::PathBuf::from(out);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).expect("output directory");
    }
    let text = serde_json::to_string_pretty(&doc).expect("serializes");
    std::fs::write(&out, text).expect("document written");
    let generic_out = out.with_file_name("openapi-generic.json");
    let text = serde_json::to_string_pretty(&generic()).expect("serializes");
    std::fs::write(generic_out, text).expect("generic document written");
}
