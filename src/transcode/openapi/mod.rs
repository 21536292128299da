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
//!
//! This module assembles the document: info, tags, security schemes and the
//! path items, one operation per binding, walking the bindings with one
//! `Builder`. The parts it assembles come from:
//!
//! - `schema`: messages and fields → JSON Schema, under `components/schemas`.
//! - `operation`: one binding → one operation: parameters, body, responses, security.
//! - `paths`: path templates → OpenAPI paths and their variables.
//! - `errors`: the `Error` schema and the shared error responses.
//! - `comments`: proto comments → descriptions and summaries.

mod comments;
mod errors;
mod operation;
mod paths;
mod schema;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use prost_reflect::{ExtensionDescriptor, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value, json};

use self::{
    comments::comment,
    errors::{ERROR_SCHEMA, error_responses, error_schema},
    paths::{openapi_path, shape_of},
};
use super::{JsonNames, TranscodeOptions, rules::Binding};

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

/// The state of one document build. Its methods live with their concern:
/// operations in `operation`, schemas in `schema`.
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
