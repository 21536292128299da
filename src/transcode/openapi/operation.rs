//! One binding → one OpenAPI operation: its parameters (path variables,
//! query fields and the `Idempotency-Key` header), request body, responses
//! and security, as the transcoder serves that binding.

use http::StatusCode;
use prost_reflect::{
    FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, Value as ProtoValue,
};
use serde_json::{Map, Value, json};

use super::{
    Builder, JSON,
    comments::{comment, field_comment, summary},
    errors::NAMED_ERRORS,
    paths::openapi_path,
    schema::is_well_known,
};
use crate::transcode::{
    error::http_status,
    request::REQUEST_ID_FIELD,
    response::{NEXT_PAGE_TOKEN, PAGE_TOKEN},
    rules::{Binding, BodyTarget},
    scalar,
};

/// Nested request messages become dotted query parameters down to this
/// depth; deeper (or recursive) messages would flood the parameter list.
const MAX_QUERY_DEPTH: usize = 3;

impl Builder {
    pub(super) fn operation(&mut self, binding: &Binding, id: String) -> Value {
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
        let bound = bound_numbers(binding);
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

    /// The body's schema leaves out the fields the path sets: the path
    /// wins over the body, so a value there would be ignored.
    fn request_body(&mut self, binding: &Binding) -> Option<Value> {
        let bound = bound_numbers(binding);
        let bound: Vec<&[u32]> = bound.iter().map(Vec::as_slice).collect();
        let (schema, required, description) = match &binding.body {
            BodyTarget::None => return None,
            // An empty body is the empty message: every field may be omitted.
            BodyTarget::Whole => {
                let schema = self.message_without(&binding.rpc.input(), &bound);
                (schema, false, None)
            }
            // The body is the resource the method acts on; without it the
            // method has nothing to act on.
            BodyTarget::Field(field) => {
                let schema = self
                    .field_without(field, &bound)
                    .unwrap_or_else(|| self.value_schema(field));
                (schema, true, field_comment(field))
            }
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

pub(super) fn header(description: &str) -> Value {
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

/// The field-number chains of the fields `binding`'s path sets.
fn bound_numbers(binding: &Binding) -> Vec<Vec<u32>> {
    binding
        .path_fields
        .iter()
        .map(|chain| chain.iter().map(FieldDescriptor::number).collect())
        .collect()
}
