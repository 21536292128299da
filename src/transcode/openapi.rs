//! The OpenAPI 3.1 document of the HTTP surface, built from the same
//! bindings and options the router serves, so the two cannot drift.
//!
//! Schemas follow the proto3 JSON mapping as this transcoder applies it:
//! field names in the configured style, 64-bit integers as strings, floats
//! also as strings (`"8"`, `"NaN"`), well-known types in their JSON forms.
//! Descriptions are the proto comments. No field is marked required:
//! proto3 requests may omit any of them.
//!
//! What OpenAPI cannot express is left out openly rather than approximated:
//! a binding whose path OpenAPI cannot tell from an earlier one's (the same
//! path and method once `{var=…}` becomes `{var}`, or the same path with
//! other variable names), or whose HTTP method has no OpenAPI field, is
//! listed under `x-omitted-bindings` with the reason.

use super::{
    request::REQUEST_ID_FIELD,
    response::{NEXT_PAGE_TOKEN, PAGE_TOKEN},
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use http::StatusCode;
use prost_reflect::{
    ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, Value as ProtoValue,
};
use serde_json::{Map, Value, json};
use tonic::Code;

use super::{
    JsonNames, TranscodeOptions,
    error::http_status,
    rules::{Binding, BodyTarget},
    scalar,
};

/// What the descriptors do not say about the API.
#[derive(Debug, Clone)]
pub struct OpenApiInfo {
    pub title: String,
    pub version: String,
    /// Extension name of a string method option naming the OAuth2 scope a
    /// method needs (e.g. `timesheets.v1.required_scope`); `None` documents
    /// no scopes.
    pub scope_option: Option<String>,
    /// OAuth2 token URL for the client-credentials flow.
    pub token_url: String,
}

const JSON: &str = "application/json";
/// The value field of a map entry, fixed by descriptor.proto; looked up
/// instead of `map_entry_value_field`, which panics on a malformed pool.
const MAP_VALUE_NUMBER: u32 = 2;
const SCHEMAS: &str = "#/components/schemas/";
const ERROR_SCHEMA: &str = "Error";
/// Nested request messages become dotted query parameters down to this
/// depth; deeper (or recursive) messages would flood the parameter list.
const MAX_QUERY_DEPTH: usize = 3;
/// The error responses worth naming on every operation; everything else
/// (405, 413, 429, 5xx) is covered by `default`. Statuses come from the one
/// code table, so the document follows it.
const NAMED_ERRORS: &[(Code, &str, &str)] = &[
    (
        Code::InvalidArgument,
        "BadRequest",
        "The request is malformed or invalid (INVALID_ARGUMENT, FAILED_PRECONDITION, \
         OUT_OF_RANGE): bad JSON, an unknown field or query parameter, a value out of range. \
         A malformed credential is also a 400, with `WWW-Authenticate`.",
    ),
    (
        Code::Unauthenticated,
        "Unauthenticated",
        "No valid access token (UNAUTHENTICATED).",
    ),
    (
        Code::PermissionDenied,
        "PermissionDenied",
        "The token lacks the operation's scope (PERMISSION_DENIED).",
    ),
    (
        Code::NotFound,
        "NotFound",
        "The resource does not exist or is not visible to the caller (NOT_FOUND).",
    ),
    (
        Code::AlreadyExists,
        "Conflict",
        "The request conflicts with the current state (ALREADY_EXISTS, ABORTED).",
    ),
    (
        Code::Unavailable,
        "Unavailable",
        "The service is temporarily unavailable (UNAVAILABLE); retry after `Retry-After`.",
    ),
];

/// Builds the document; see the module docs for what it contains.
pub(crate) fn document(
    bindings: &[Binding],
    options: &TranscodeOptions,
    info: &OpenApiInfo,
) -> Value {
    let scope_option = info.scope_option.as_deref().and_then(|name| {
        let found = bindings
            .first()
            .and_then(|b| b.rpc.parent_pool().get_extension_by_name(name));
        if found.is_none() && !bindings.is_empty() {
            tracing::warn!(option = name, "scope option not in the descriptor pool");
        }
        found
    });
    let mut builder = Builder {
        proto_names: options.json_names == JsonNames::Proto,
        closed_objects: !options.ignore_unknown_fields,
        scope_option,
        schemas: BTreeMap::new(),
        queued: HashSet::new(),
        pending: Vec::new(),
        scopes: BTreeMap::new(),
    };
    let mut paths = Paths::default();
    let mut services: Vec<(String, Option<String>)> = Vec::new();
    for binding in bindings {
        let service = binding.rpc.parent_service();
        if !services.iter().any(|(name, _)| name == service.name()) {
            let text = comment(&service.parent_file(), service.path());
            services.push((service.name().to_owned(), text));
        }
        paths.add(binding, &mut builder);
    }
    builder.drain();
    let tags: Vec<Value> = services
        .iter()
        .map(|(name, text)| match text {
            Some(text) => json!({"name": name, "description": text}),
            None => json!({"name": name}),
        })
        .collect();
    let mut schemas: Map<String, Value> = builder.schemas.into_iter().collect();
    schemas.insert(ERROR_SCHEMA.into(), error_schema());
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": info_object(info, &services),
        "tags": tags,
        "paths": paths.items,
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "securitySchemes": security_schemes(&info.token_url, builder.scopes),
        },
    });
    if !paths.omitted.is_empty()
        && let Value::Object(top) = &mut doc
    {
        top.insert("x-omitted-bindings".into(), paths.omitted.into());
    }
    doc
}

/// The path items, and what could not become one.
#[derive(Default)]
struct Paths {
    items: Map<String, Value>,
    /// Path shape (variable names erased) → the path key that has it.
    shapes: HashMap<String, String>,
    operation_ids: HashSet<String>,
    omitted: Vec<Value>,
}

impl Paths {
    fn add(&mut self, binding: &Binding, builder: &mut Builder) {
        let (path, _) = openapi_path(binding.template.source());
        let method = binding.http_method.as_str().to_ascii_lowercase();
        let shape = shape_of(&path);
        let reason = if !OPENAPI_METHODS.contains(&method.as_str()) {
            Some(format!("OpenAPI 3.1 has no operation field for {method}"))
        } else if let Some(other) = self.shapes.get(&shape).filter(|other| **other != path) {
            // OpenAPI forbids templated paths that differ only in their
            // variable names.
            Some(format!("{path} is the same OpenAPI path as {other}"))
        } else if self
            .items
            .get(&path)
            .and_then(|item| item.get(&method))
            .is_some()
        {
            Some(format!(
                "{method} {path} is already taken by another binding"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            self.omitted.push(json!({
                "method": binding.http_method.as_str(),
                "template": binding.template.source(),
                "grpc": &*binding.grpc_path,
                "reason": reason,
            }));
            return;
        }
        let id = operation_id(&binding.rpc, &mut self.operation_ids);
        let operation = builder.operation(binding, id);
        self.shapes.entry(shape).or_insert_with(|| path.clone());
        if let Value::Object(item) = self.items.entry(path).or_insert_with(|| json!({})) {
            item.insert(method, operation);
        }
    }
}

/// Title and version as given; the description is the service comment
/// (each service's, by name, when there are several).
fn info_object(info: &OpenApiInfo, services: &[(String, Option<String>)]) -> Value {
    let described: Vec<(&str, &str)> = services
        .iter()
        .filter_map(|(name, text)| Some((name.as_str(), text.as_deref()?)))
        .collect();
    let description = match (services.len(), described.as_slice()) {
        (1, [(_, only)]) => (*only).to_owned(),
        (_, many) => many
            .iter()
            .map(|(name, text)| format!("**{name}**: {text}"))
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    let mut object = Map::new();
    object.insert("title".into(), info.title.as_str().into());
    object.insert("version".into(), info.version.as_str().into());
    if !description.is_empty() {
        object.insert("description".into(), description.into());
    }
    Value::Object(object)
}

fn security_schemes(token_url: &str, scopes: BTreeMap<String, BTreeSet<String>>) -> Value {
    let scopes: Map<String, Value> = scopes
        .into_iter()
        .map(|(scope, methods)| {
            let methods: Vec<_> = methods.into_iter().collect();
            (scope, format!("Needed by {}.", methods.join(", ")).into())
        })
        .collect();
    json!({
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An OAuth2 access token in `Authorization: Bearer <token>`; \
                            it must carry the operation's `x-required-scope`.",
        },
        "oauth2": {
            "type": "oauth2",
            "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": scopes}},
        },
    })
}

/// The operation fields of an OpenAPI 3.1 path item.
const OPENAPI_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `Service_Method`, then `_2`, `_3` … for its additional bindings.
fn operation_id(method: &MethodDescriptor, used: &mut HashSet<String>) -> String {
    let base = format!("{}_{}", method.parent_service().name(), method.name());
    let mut id = base.clone();
    let mut n = 1;
    while !used.insert(id.clone()) {
        n += 1;
        id = format!("{base}_{n}");
    }
    id
}

struct Builder {
    proto_names: bool,
    /// Unknown request fields are a 400 unless the transcoder ignores them.
    closed_objects: bool,
    scope_option: Option<ExtensionDescriptor>,
    schemas: BTreeMap<String, Value>,
    queued: HashSet<String>,
    /// Messages referenced but not yet described.
    pending: Vec<MessageDescriptor>,
    /// Scope → the methods that need it, for the scope descriptions.
    scopes: BTreeMap<String, BTreeSet<String>>,
}

impl Builder {
    fn operation(&mut self, binding: &Binding, id: String) -> Value {
        let rpc = &binding.rpc;
        let service = rpc.parent_service();
        let mut op = Map::new();
        op.insert("operationId".into(), id.into());
        op.insert("tags".into(), json!([service.name()]));
        match comment(&rpc.parent_file(), rpc.path()) {
            Some(text) => {
                op.insert("summary".into(), summary(&text).into());
                op.insert("description".into(), text.into());
            }
            None => {
                op.insert("summary".into(), rpc.name().into());
            }
        }
        let mut parameters = self.path_parameters(binding);
        parameters.extend(self.query_parameters(binding));
        if let Some(header) = idempotency_header(&rpc.input()) {
            parameters.push(header);
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), parameters.into());
        }
        if let Some(body) = self.request_body(binding) {
            op.insert("requestBody".into(), body);
        }
        op.insert("responses".into(), self.responses(binding));
        let scopes = self.method_scopes(rpc);
        for scope in scopes.iter().flatten() {
            self.scopes
                .entry(scope.clone())
                .or_default()
                .insert(format!("{}.{}", service.name(), rpc.name()));
        }
        let listed = scopes.clone().unwrap_or_default();
        op.insert(
            "security".into(),
            json!([{"oauth2": listed}, {"bearerAuth": []}]),
        );
        if self.scope_option.is_some() {
            let required = match scopes.as_deref() {
                None => Value::Null,
                Some([one]) => one.as_str().into(),
                Some(many) => many.join(" ").into(),
            };
            op.insert("x-required-scope".into(), required);
        }
        op.insert("x-grpc-method".into(), (*binding.grpc_path).into());
        Value::Object(op)
    }

    /// The scopes the method option names (space-separated, or a repeated
    /// option); `None` when the method does not declare any.
    fn method_scopes(&self, method: &MethodDescriptor) -> Option<Vec<String>> {
        let extension = self.scope_option.as_ref()?;
        let options = method.options();
        if !options.has_extension(extension) {
            return None;
        }
        let mut scopes = Vec::new();
        match options.get_extension(extension).as_ref() {
            ProtoValue::String(s) => scopes.extend(s.split_whitespace().map(str::to_owned)),
            ProtoValue::List(items) => scopes.extend(
                items
                    .iter()
                    .filter_map(ProtoValue::as_str)
                    .flat_map(str::split_whitespace)
                    .map(str::to_owned),
            ),
            _ => {}
        }
        (!scopes.is_empty()).then_some(scopes)
    }

    fn path_parameters(&mut self, binding: &Binding) -> Vec<Value> {
        let (_, variables) = openapi_path(binding.template.source());
        let mut fields = binding.path_fields.iter();
        variables
            .into_iter()
            .map(|var| {
                let leaf = if var.anonymous {
                    None
                } else {
                    fields.next().and_then(|chain| chain.last())
                };
                let mut schema = match leaf {
                    Some(field) => self.kind_schema(&field.kind()),
                    None => json!({"type": "string"}),
                };
                if let (Some(pattern), Value::Object(s)) = (&var.pattern, &mut schema) {
                    s.insert("pattern".into(), pattern.as_str().into());
                }
                let mut description = leaf.and_then(field_comment).unwrap_or_default();
                if var.anonymous {
                    description = "Matches any value; it is not passed to the method.".into();
                }
                if var.multi_segment {
                    // OpenAPI's `simple` style would encode the slashes, and an
                    // encoded slash never separates segments when matching.
                    description.push_str(" The value spans path segments: send its `/` unencoded.");
                }
                parameter(&var.name, "path", true, schema, description.trim())
            })
            .collect()
    }

    /// The request fields neither the path nor the body binds, as the
    /// transcoder resolves them (`request.rs`); none for `body: "*"`.
    fn query_parameters(&mut self, binding: &Binding) -> Vec<Value> {
        let body = match &binding.body {
            BodyTarget::Whole => return Vec::new(),
            BodyTarget::Field(field) => Some(field.number()),
            BodyTarget::None => None,
        };
        let bound: Vec<Vec<u32>> = binding
            .path_fields
            .iter()
            .map(|chain| chain.iter().map(FieldDescriptor::number).collect())
            .collect();
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        for field in binding.rpc.input().fields() {
            if Some(field.number()) != body {
                self.query_field(field, &mut prefix, &bound, &mut out);
            }
        }
        out
    }

    fn query_field(
        &mut self,
        field: FieldDescriptor,
        prefix: &mut Vec<FieldDescriptor>,
        bound: &[Vec<u32>],
        out: &mut Vec<Value>,
    ) {
        prefix.push(field.clone());
        let numbers: Vec<u32> = prefix.iter().map(FieldDescriptor::number).collect();
        let kind = field.kind();
        if field.is_map() || bound.contains(&numbers) {
            // Maps cannot be set from a query; path-bound fields are a 400 there.
        } else if scalar::is_text_bindable(&kind) {
            let name: Vec<&str> = prefix.iter().map(|f| self.json_name(f)).collect();
            let description = field_comment(&field).unwrap_or_default();
            let schema = self.value_schema(&field);
            out.push(parameter(
                &name.join("."),
                "query",
                false,
                schema,
                &description,
            ));
        } else if let Kind::Message(message) = kind
            && !field.is_list()
            && prefix.len() < MAX_QUERY_DEPTH
            && !is_well_known(&message)
        {
            for nested in message.fields() {
                self.query_field(nested, prefix, bound, out);
            }
        }
        prefix.pop();
    }

    fn request_body(&mut self, binding: &Binding) -> Option<Value> {
        let (schema, required, description) = match &binding.body {
            BodyTarget::None => return None,
            // An empty body is the empty message: every field may be omitted.
            BodyTarget::Whole => (self.message_ref(&binding.rpc.input()), false, None),
            // The body is the resource the method acts on; without it the
            // method has nothing to act on.
            BodyTarget::Field(field) => (self.value_schema(field), true, field_comment(field)),
        };
        let mut body = Map::new();
        if let Some(text) = description {
            body.insert("description".into(), text.into());
        }
        body.insert("required".into(), required.into());
        body.insert("content".into(), json!({JSON: {"schema": schema}}));
        Some(Value::Object(body))
    }

    fn responses(&mut self, binding: &Binding) -> Value {
        let output = binding.rpc.output();
        let status = binding.success;
        let reason = status.canonical_reason().unwrap_or("Success");
        let mut success = Map::new();
        let mut headers = Map::new();
        if status == StatusCode::NO_CONTENT {
            success.insert("description".into(), reason.into());
        } else {
            let (schema, description) = match &binding.response_body {
                Some(field) => {
                    let mut text = format!(
                        "The `{}` field of {}, unwrapped.",
                        self.json_name(field),
                        output.name()
                    );
                    if let Some(comment) = field_comment(field) {
                        text = format!("{text} {comment}");
                    }
                    (self.value_schema(field), text)
                }
                None => (
                    self.message_ref(&output),
                    comment(&output.parent_file(), output.path())
                        .unwrap_or_else(|| reason.to_owned()),
                ),
            };
            success.insert("description".into(), description.into());
            success.insert("content".into(), json!({JSON: {"schema": schema}}));
        }
        if let Some(location) = &binding.location {
            let (get, _) = openapi_path(location.template.source());
            headers.insert(
                "Location".into(),
                header(&format!("The created resource: `GET {get}`.")),
            );
        }
        if has_next_link(binding) {
            headers.insert(
                "Link".into(),
                header(&format!(
                    "`<…?{PAGE_TOKEN}=…>; rel=\"next\"` (RFC 8288) when there is a next page: the \
                     same request with the next `{PAGE_TOKEN}`. Absent on the last page."
                )),
            );
        }
        if !headers.is_empty() {
            success.insert("headers".into(), headers.into());
        }
        let mut responses = Map::new();
        responses.insert(status.as_str().into(), success.into());
        for (code, name, _) in NAMED_ERRORS {
            responses.insert(
                http_status(*code).as_str().into(),
                json!({"$ref": format!("#/components/responses/{name}")}),
            );
        }
        responses.insert(
            "default".into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
        Value::Object(responses)
    }

    fn json_name<'f>(&self, field: &'f FieldDescriptor) -> &'f str {
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

    fn value_schema(&mut self, field: &FieldDescriptor) -> Value {
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

    fn kind_schema(&mut self, kind: &Kind) -> Value {
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
    fn message_ref(&mut self, message: &MessageDescriptor) -> Value {
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

    /// Describes every queued message, following the references each adds.
    fn drain(&mut self) {
        while let Some(message) = self.pending.pop() {
            let mut properties = Map::new();
            for field in message.fields() {
                let schema = self.described(&field);
                properties.insert(self.json_name(&field).to_owned(), schema);
            }
            let mut schema = Map::new();
            schema.insert("type".into(), "object".into());
            if let Some(text) = comment(&message.parent_file(), message.path()) {
                schema.insert("description".into(), text.into());
            }
            schema.insert("properties".into(), properties.into());
            if self.closed_objects {
                schema.insert("additionalProperties".into(), false.into());
            }
            self.schemas
                .insert(message.full_name().to_owned(), schema.into());
        }
    }
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

fn is_well_known(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.")
}

fn parameter(name: &str, place: &str, required: bool, schema: Value, description: &str) -> Value {
    let mut p = Map::new();
    p.insert("name".into(), name.into());
    p.insert("in".into(), place.into());
    p.insert("required".into(), required.into());
    if !description.is_empty() {
        p.insert("description".into(), description.into());
    }
    p.insert("schema".into(), schema);
    Value::Object(p)
}

fn header(description: &str) -> Value {
    json!({"description": description, "schema": {"type": "string"}})
}

/// The transcoder copies `Idempotency-Key` into a top-level string
/// `request_id` that body and query left empty.
fn idempotency_header(input: &MessageDescriptor) -> Option<Value> {
    let field = input.get_field_by_name(REQUEST_ID_FIELD)?;
    if field.kind() != Kind::String || field.is_list() {
        return None;
    }
    Some(parameter(
        "Idempotency-Key",
        "header",
        false,
        json!({"type": "string"}),
        &format!("Fills `{REQUEST_ID_FIELD}` when the request does not set it."),
    ))
}

/// Mirrors `response.rs`: a bare-array list moves its next page token to
/// a `Link` header.
fn has_next_link(binding: &Binding) -> bool {
    binding.response_body.as_ref().is_some_and(|field| {
        field.name() != NEXT_PAGE_TOKEN
            && binding.rpc.input().get_field_by_name(PAGE_TOKEN).is_some()
            && binding
                .rpc
                .output()
                .get_field_by_name(NEXT_PAGE_TOKEN)
                .is_some()
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "The AIP-193 error body of every failure.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "status", "message", "details"],
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "The HTTP status."},
                "status": {"type": "string", "description": "The gRPC code name, e.g. `NOT_FOUND`."},
                "message": {"type": "string", "description": "A developer-facing explanation."},
                "details": {
                    "type": "array",
                    "description": "google.rpc details (BadRequest, ErrorInfo …) in their JSON form.",
                    "items": {
                        "type": "object",
                        "properties": {"@type": {"type": "string"}},
                        "required": ["@type"],
                    },
                },
            },
        }},
    })
}

fn error_responses() -> Value {
    let content = json!({JSON: {"schema": {"$ref": format!("{SCHEMAS}{ERROR_SCHEMA}")}}});
    let challenge = header("RFC 6750 challenge naming the error and, for 403, the missing scope.");
    let mut responses = Map::new();
    for (code, name, description) in NAMED_ERRORS {
        let mut response = Map::new();
        response.insert("description".into(), (*description).into());
        let headers = match code {
            Code::InvalidArgument | Code::Unauthenticated | Code::PermissionDenied => {
                Some(json!({"WWW-Authenticate": challenge}))
            }
            Code::Unavailable => Some(json!({"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }})),
            _ => None,
        };
        if let Some(headers) = headers {
            response.insert("headers".into(), headers);
        }
        response.insert("content".into(), content.clone());
        responses.insert((*name).into(), response.into());
    }
    responses.insert(
        "Error".into(),
        json!({"description": "Any other failure, in the same shape.", "content": content}),
    );
    Value::Object(responses)
}

/// One template variable (or anonymous wildcard) as an OpenAPI parameter.
#[derive(Debug, PartialEq, Eq)]
struct PathVariable {
    name: String,
    /// For `{var=a/*}` and the like: the regex the value must match.
    pattern: Option<String>,
    multi_segment: bool,
    /// A bare `*`/`**` outside any variable: matched, but bound to nothing.
    anonymous: bool,
}

/// `/v1/{name=shelves/*}/books/{id}:verb` → `/v1/{name}/books/{id}:verb`,
/// with one entry per `{…}` (or bare wildcard), in template order. The
/// template was validated when the binding was read.
fn openapi_path(source: &str) -> (String, Vec<PathVariable>) {
    let rest = source.strip_prefix('/').unwrap_or(source);
    let mut segments = Vec::new();
    let mut verb = "";
    let (mut in_variable, mut start) = (false, 0);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => in_variable = true,
            '}' => in_variable = false,
            '/' if !in_variable => {
                segments.push(&rest[start..i]);
                start = i + 1;
            }
            ':' if !in_variable => {
                verb = &rest[i..];
                break;
            }
            _ => {}
        }
    }
    segments.push(&rest[start..rest.len() - verb.len()]);
    let mut variables = Vec::new();
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        let variable =
            if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, sub) = inner.split_once('=').unwrap_or((inner, "*"));
                PathVariable {
                    name: name.to_owned(),
                    pattern: (sub != "*").then(|| segments_regex(sub)),
                    multi_segment: sub.contains('/') || sub.contains("**"),
                    anonymous: false,
                }
            } else if segment == "*" || segment == "**" {
                PathVariable {
                    name: format!("_wildcard{}", variables.len() + 1),
                    pattern: None,
                    multi_segment: segment == "**",
                    anonymous: true,
                }
            } else {
                out.push_str(segment);
                continue;
            };
        out.push('{');
        out.push_str(&variable.name);
        out.push('}');
        variables.push(variable);
    }
    out.push_str(verb);
    (out, variables)
}

/// The path with every variable name erased: paths with equal shapes are
/// one path to OpenAPI.
fn shape_of(path: &str) -> String {
    let mut shape = String::with_capacity(path.len());
    let mut in_variable = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_variable = true;
                shape.push_str("{}");
            }
            '}' => in_variable = false,
            c if !in_variable => shape.push(c),
            _ => {}
        }
    }
    shape
}

fn segments_regex(sub: &str) -> String {
    let parts: Vec<String> = sub
        .split('/')
        .map(|s| match s {
            "*" => "[^/]+".to_owned(),
            "**" => ".*".to_owned(),
            literal => literal
                .chars()
                .flat_map(|c| {
                    let escape = r"\.^$|?*+()[]{}".contains(c);
                    escape.then_some('\\').into_iter().chain([c])
                })
                .collect(),
        })
        .collect();
    format!("^{}$", parts.join("/"))
}

fn field_comment(field: &FieldDescriptor) -> Option<String> {
    comment(&field.parent_file(), field.path())
}

/// The comment protoc recorded for the element at `path`: the leading one,
/// else the trailing one, without the space after `//` and without lint
/// directives (they are for tools, not readers).
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let raw = location
        .leading_comments
        .as_deref()
        .or(location.trailing_comments.as_deref())?;
    let lines: Vec<&str> = raw
        .lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .filter(|line| !line.starts_with("buf:lint:"))
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The first sentence of the first paragraph.
fn summary(text: &str) -> String {
    let paragraph = text
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace('\n', " ");
    match paragraph.find(". ") {
        Some(end) => paragraph[..=end].to_owned(),
        None => paragraph,
    }
}

#[cfg(test)]
mod tests {
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
            op["requestBody"]["content"][JSON]["schema"]["$ref"],
            "#/components/schemas/timesheets.v1.ApproveTimesheetRequest"
        );
        assert!(operation(&doc, "/approvals/{id}", "put").is_object());
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
                 "options": {"[google.api.http]": {"custom": {"kind": "PURGE", "path": "/v1/gadgets/{name}"}}}}
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
        let out = std::env::var("OPENAPI_OUT").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/openapi.json").to_owned()
        });
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
}
