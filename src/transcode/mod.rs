//! A generic `google.api.http` → gRPC transcoder. It knows nothing about
//! any particular service: the rules come from a descriptor pool, requests
//! are sent in-process through whatever gRPC service it is given (with its
//! auth layer and limits), and replies are mapped back to HTTP/JSON.
//!
//! - `template`: the path-template grammar, matching and expansion.
//! - `rules`: reading the rules from method options into bindings.
//! - `routes`: method + path → binding, 404 and 405.
//! - `scalar`: text → value, for path variables and query parameters.
//! - `json`: JSON ↔ message through prost-reflect's serde support.
//! - `unique_keys`: refuses a body that names a field or map key twice.
//! - `reply_json`: a reply's protobuf bytes straight to JSON (the common
//!   shapes; anything else goes through `json`).
//! - `request`: body, path, query and headers → the request message.
//! - `dispatch`: the axum handler and the in-process gRPC call.
//! - `response`: the gRPC reply → the HTTP success response.
//! - `error`: the one error type, the code → status table, AIP-193 bodies.
//! - `openapi`: the OpenAPI 3.1 document of the same bindings.
//!
//! Mapping, in short: the body follows the proto3 JSON mapping, accepting
//! proto and lowerCamelCase names and numbers sent as strings; replies use
//! proto field names by default and always include default values;
//! `response_body` is honoured, with a list's `next_page_token` moved to a
//! `Link: <…>; rel="next"` header when the body is a bare array; a POST to a
//! `Create…`/`Upload…` method answers 201 (with `Location` when a GET of the
//! same service names the resource), a method returning
//! `google.protobuf.Empty` answers 204, everything else 200.

mod dispatch;
mod error;
mod json;
mod openapi;
mod reply_json;
mod request;
mod request_json;
mod response;
mod routes;
mod rules;
mod scalar;
mod template;
mod unique_keys;

#[cfg(test)]
mod tests;

use std::{convert::Infallible, sync::Arc};

use anyhow::Context;
use http::HeaderName;
use prost_reflect::{DescriptorPool, DeserializeOptions, SerializeOptions};

pub use error::{code_name, error_response, http_status};
pub use openapi::OpenApiInfo;

/// The gRPC service transcoded calls are sent to: normally the same stack
/// native gRPC calls go through.
pub type GrpcService = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Infallible,
>;

/// Field names in JSON replies. Requests accept both spellings either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JsonNames {
    /// `user_id`: what the original REST API sent and the Android app reads.
    #[default]
    Proto,
    /// `userId`: the canonical proto3 JSON spelling.
    Camel,
}

/// How the transcoder maps requests and replies.
#[derive(Debug, Clone)]
pub struct TranscodeOptions {
    /// Field names in replies (and in error details).
    pub json_names: JsonNames,
    /// Ignore unknown JSON body fields instead of answering 400. Off by
    /// default, so a misspelt field is reported rather than lost.
    pub ignore_unknown_fields: bool,
    /// Largest accepted request body, in bytes; larger is 413. 1 MiB is far
    /// above any timesheet yet small enough that a client cannot make the
    /// server buffer much.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a body; deeper is 400 before any
    /// parsing. Timesheet bodies are two levels deep; 64 leaves room for
    /// generic messages while bounding the parser's recursion.
    pub max_json_depth: usize,
    /// Request headers copied to gRPC metadata besides the ones always
    /// copied (`authorization`, `x-request-id`, `grpc-timeout`). Everything
    /// else stays behind, so HTTP-only headers cannot smuggle metadata.
    pub forward_headers: Vec<HeaderName>,
}

/// 1 MiB; see [`TranscodeOptions::max_body_bytes`].
/// See [`TranscodeOptions::max_json_depth`].
pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl Default for TranscodeOptions {
    fn default() -> Self {
        Self {
            json_names: JsonNames::default(),
            ignore_unknown_fields: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            forward_headers: Vec::new(),
        }
    }
}

/// The route table and mapping settings, ready to serve.
pub struct Transcoder {
    routes: routes::RouteTable,
    errors: error::ErrorRenderer,
    options: TranscodeOptions,
}

impl Transcoder {
    /// Builds the route table for `services` (full names); rule conflicts are an error.
    pub fn new(
        pool: &DescriptorPool,
        services: &[&str],
        options: TranscodeOptions,
    ) -> anyhow::Result<Self> {
        let bindings = rules::read_bindings(pool, services)?;
        let routes = routes::RouteTable::new(bindings)?;
        // Error details are google.rpc messages inside Any; tonic-types
        // ships their descriptors. The service's own files stay in the pool
        // so its custom detail types decode too; files already present are
        // skipped.
        let mut details_pool = pool.clone();
        details_pool
            .decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .context("adding the google.rpc error detail descriptors")?;
        let errors = error::ErrorRenderer::new(details_pool, serialize_options(options.json_names));
        Ok(Self {
            routes,
            errors,
            options,
        })
    }

    /// Every binding as `(HTTP method, path template, gRPC path)`, in
    /// declaration order, for logs and documentation.
    pub fn bindings(&self) -> Vec<(http::Method, String, String)> {
        self.routes
            .bindings()
            .iter()
            .map(|b| {
                (
                    b.http_method.clone(),
                    b.template.source().to_owned(),
                    b.grpc_path.to_string(),
                )
            })
            .collect()
    }

    /// The OpenAPI 3.1 document of every binding, built from the route
    /// table and options this transcoder serves with, so it cannot drift.
    pub fn openapi(&self, info: &OpenApiInfo) -> serde_json::Value {
        openapi::document(self.routes.bindings(), &self.options, info)
    }

    /// An axum Router serving every binding. It is one fallback handler
    /// (templates with `:verb` cannot be axum routes), so mount it with
    /// `Router::fallback_service`, or `merge` it into a router that has no
    /// fallback of its own. Unknown paths get a JSON 404; a gRPC request
    /// that reaches it gets a gRPC UNIMPLEMENTED.
    pub fn into_router(self, grpc: GrpcService) -> axum::Router {
        let mut forward_headers = self.options.forward_headers;
        forward_headers.retain(|name| !dispatch::ALWAYS_FORWARDED.contains(name));
        let shared = dispatch::Shared {
            routes: self.routes,
            grpc,
            errors: self.errors,
            deserialize: DeserializeOptions::new()
                .deny_unknown_fields(!self.options.ignore_unknown_fields),
            serialize: serialize_options(self.options.json_names),
            proto_names: self.options.json_names == JsonNames::Proto,
            max_body_bytes: self.options.max_body_bytes,
            max_json_depth: self.options.max_json_depth,
            forward_headers,
        };
        axum::Router::new()
            .fallback(dispatch::handle)
            .with_state(Arc::new(shared))
    }
}

/// Replies always carry default values (`approved: false`, `notes: ""`):
/// clients written against the original API throw on a missing field.
fn serialize_options(names: JsonNames) -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(names == JsonNames::Proto)
        .skip_default_fields(false)
}
