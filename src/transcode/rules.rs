//! Reading `google.api.http` rules from method options into [`Binding`]s,
//! checking at startup everything that does not depend on the request:
//! templates parse, variables and body fields exist and can be bound.

use std::sync::Arc;

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, Value,
};

use super::{scalar, template::Template};

/// Full name of the method option that carries the HTTP rule.
pub(crate) const HTTP_RULE_EXTENSION: &str = "google.api.http";
/// Output type that turns a success into 204 No Content.
const EMPTY: &str = "google.protobuf.Empty";
/// Method-name prefixes (AIP-133 and our upload) whose POST creates a
/// resource, so success is 201 Created.
const CREATING_PREFIXES: &[&str] = &["Create", "Upload"];

/// Where the request body goes.
#[derive(Debug, Clone)]
pub(crate) enum BodyTarget {
    /// `body` unset: the rule takes no body.
    None,
    /// `body: "*"`: the body is the whole request message.
    Whole,
    /// `body: "field"`: the body is this top-level field.
    Field(FieldDescriptor),
}

/// Where the created resource lives, for the `Location` header of a 201.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// A one-variable GET template of the same service.
    pub template: Template,
    /// The response field whose value fills the variable.
    pub field: FieldDescriptor,
}

/// One HTTP method + path template bound to one gRPC method.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub http_method: Method,
    pub template: Template,
    pub rpc: MethodDescriptor,
    /// `/package.Service/Method`, built once.
    pub grpc_path: Arc<str>,
    /// Resolved field chain per template variable, in template order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    pub body: BodyTarget,
    /// How a JSON body is written straight to protobuf, when its type is
    /// one the direct writer covers.
    pub request: Option<Arc<super::request_json::Plan>>,
    pub response_body: Option<FieldDescriptor>,
    /// How the reply (or its `response_body` field) is written as JSON.
    pub reply: Arc<super::reply_json::Plan>,
    /// The status of a successful call: 200, 201 or 204.
    pub success: StatusCode,
    pub location: Option<Location>,
    /// False for `additional_bindings`; the primary binding wins ties.
    pub primary: bool,
}

/// Every binding of every method of `services`, in declaration order.
pub(crate) fn read_bindings(
    pool: &DescriptorPool,
    services: &[&str],
) -> anyhow::Result<Vec<Binding>> {
    let extension = pool
        .get_extension_by_name(HTTP_RULE_EXTENSION)
        .with_context(|| format!("the descriptor pool lacks {HTTP_RULE_EXTENSION} (import google/api/annotations.proto)"))?;
    let mut bindings = Vec::new();
    for name in services {
        let service = pool
            .get_service_by_name(name)
            .with_context(|| format!("service {name} is not in the descriptor pool"))?;
        for method in service.methods() {
            let Some(rule) = http_rule(&method, &extension)? else {
                continue;
            };
            let context = || format!("the google.api.http rule of {}", method.full_name());
            if method.is_client_streaming() || method.is_server_streaming() {
                bail!("{}: streaming methods cannot be transcoded", context());
            }
            bindings.push(binding(&method, &rule, true).with_context(context)?);
            for extra in list_field(&rule, "additional_bindings") {
                if !list_field(&extra, "additional_bindings").is_empty() {
                    bail!("{}: additional_bindings cannot nest", context());
                }
                bindings.push(binding(&method, &extra, false).with_context(context)?);
            }
        }
    }
    let locations: Vec<_> = bindings
        .iter()
        .map(|b| location_for(b, &bindings))
        .collect();
    for (binding, location) in bindings.iter_mut().zip(locations) {
        binding.location = location;
    }
    Ok(bindings)
}

fn http_rule(
    method: &MethodDescriptor,
    extension: &ExtensionDescriptor,
) -> anyhow::Result<Option<DynamicMessage>> {
    let options = method.options();
    if !options.has_extension(extension) {
        return Ok(None);
    }
    match options.get_extension(extension).into_owned() {
        Value::Message(rule) => Ok(Some(rule)),
        other => bail!(
            "{HTTP_RULE_EXTENSION} of {} is not a message: {other:?}",
            method.full_name()
        ),
    }
}

fn binding(
    method: &MethodDescriptor,
    rule: &DynamicMessage,
    primary: bool,
) -> anyhow::Result<Binding> {
    let (http_method, path) = pattern(rule)?;
    let template = Template::parse(&path)?;
    let input = method.input();
    let path_fields = template
        .variables()
        .iter()
        .map(|var| resolve_variable(&input, &var.field_path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = match string_field(rule, "body").as_str() {
        "" => BodyTarget::None,
        "*" => BodyTarget::Whole,
        name => {
            let field = input.get_field_by_name(name).with_context(|| {
                format!("body field {name} is not a field of {}", input.full_name())
            })?;
            // The field itself may not be bound twice; a field inside it
            // may (`patch: "/v1/{book.name=…}" body: "book"`, the usual
            // update), and the path's value wins over the body's.
            if path_fields.iter().any(|chain| chain[..] == [field.clone()]) {
                bail!(
                    "body field {name} is also bound by the path {}",
                    template.source()
                );
            }
            BodyTarget::Field(field)
        }
    };
    let output = method.output();
    let response_body = match string_field(rule, "response_body").as_str() {
        "" => None,
        _ if output.full_name().starts_with("google.protobuf.") => {
            bail!(
                "response_body cannot select a field of the well-known type {}",
                output.full_name()
            )
        }
        name => Some(output.get_field_by_name(name).with_context(|| {
            format!(
                "response_body {name} is not a field of {}",
                output.full_name()
            )
        })?),
    };
    let creates = http_method == Method::POST
        && CREATING_PREFIXES
            .iter()
            .any(|p| method.name().starts_with(p));
    let success = if output.full_name() == EMPTY {
        StatusCode::NO_CONTENT
    } else if creates {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Binding {
        http_method,
        template,
        grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()).into(),
        rpc: method.clone(),
        path_fields,
        request: match &body {
            BodyTarget::None => None,
            BodyTarget::Whole => super::request_json::Plan::new(&method.input(), None),
            BodyTarget::Field(field) => {
                super::request_json::Plan::new(&method.input(), Some(field))
            }
        }
        .map(Arc::new),
        body,
        reply: Arc::new(super::reply_json::Plan::new(
            &output,
            response_body.as_ref(),
        )),
        response_body,
        success,
        location: None,
        primary,
    })
}

/// The HTTP method and template of a rule's `pattern` oneof.
fn pattern(rule: &DynamicMessage) -> anyhow::Result<(Method, String)> {
    for (name, method) in [
        ("get", Method::GET),
        ("put", Method::PUT),
        ("post", Method::POST),
        ("delete", Method::DELETE),
        ("patch", Method::PATCH),
    ] {
        if rule.has_field_by_name(name) {
            return Ok((method, string_field(rule, name)));
        }
    }
    if rule.has_field_by_name("custom")
        && let Some(Value::Message(custom)) =
            rule.get_field_by_name("custom").map(|v| v.into_owned())
    {
        let kind = string_field(&custom, "kind");
        let method = Method::from_bytes(kind.as_bytes())
            .with_context(|| format!("custom kind {kind:?} is not an HTTP method"))?;
        return Ok((method, string_field(&custom, "path")));
    }
    bail!("the rule has no pattern (get, put, post, delete, patch or custom)")
}

/// Resolves `a.b.c` against `message`: every step but the last a singular
/// message, the last something a path segment can carry.
fn resolve_variable(
    message: &MessageDescriptor,
    path: &[String],
) -> anyhow::Result<Vec<FieldDescriptor>> {
    let dotted = path.join(".");
    let mut chain = Vec::with_capacity(path.len());
    let mut current = message.clone();
    for (i, name) in path.iter().enumerate() {
        let field = current.get_field_by_name(name).with_context(|| {
            format!(
                "path variable {dotted}: {} has no field {name}",
                current.full_name()
            )
        })?;
        if field.is_list() || field.is_map() {
            bail!("path variable {dotted}: {name} is repeated");
        }
        let last = i + 1 == path.len();
        match field.kind() {
            Kind::Message(next) if !last => current = next,
            kind if last && scalar::is_text_bindable(&kind) => {}
            _ => bail!("path variable {dotted}: {name} cannot be bound from a path segment"),
        }
        chain.push(field);
    }
    Ok(chain)
}

/// For a 201 binding: a GET binding of the same service that returns the
/// same message and names one variable that the response has a field for.
/// A GET under the same literal prefix is preferred, then a primary one.
fn location_for(binding: &Binding, all: &[Binding]) -> Option<Location> {
    if binding.success != StatusCode::CREATED || binding.response_body.is_some() {
        return None;
    }
    let output = binding.rpc.output();
    let service = binding.rpc.parent_service().full_name();
    let prefix = binding
        .template
        .is_literal()
        .then(|| binding.template.literal_prefix());
    // Reversed so that, among equals, the first declared binding wins.
    all.iter()
        .rev()
        .filter(|get| get.http_method == Method::GET && get.response_body.is_none())
        .filter(|get| get.rpc.parent_service().full_name() == service && get.rpc.output() == output)
        .filter_map(|get| {
            let [variable] = get.template.variables() else {
                return None;
            };
            let name = variable.field_path.last()?;
            let field = output
                .get_field_by_name(name)
                .filter(|f| f.kind() == Kind::String && !f.is_list())?;
            let same_prefix = prefix
                .as_ref()
                .is_some_and(|p| get.template.literal_prefix() == *p);
            Some((
                (same_prefix, get.primary),
                Location {
                    template: get.template.clone(),
                    field,
                },
            ))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, location)| location)
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn list_field(message: &DynamicMessage, name: &str) -> Vec<DynamicMessage> {
    match message.get_field_by_name(name).as_deref() {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|v| v.as_message().cloned())
            .collect(),
        _ => Vec::new(),
    }
}
