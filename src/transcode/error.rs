//! The transcoder's one error type, the one gRPC code → HTTP status table,
//! and the one place an error becomes an HTTP response (AIP-193 shape).
//!
//! ```json
//! {"error": {"code": 404, "status": "NOT_FOUND", "message": "...", "details": [...]}}
//! ```
//!
//! `details` always appears, as an array, so clients need no null check.
//! Each detail is a `google.protobuf.Any` in its JSON form (with `@type`),
//! decoded through a pool that knows the `google.rpc` types and the
//! service's own; a type neither knows is kept as `{"@type", "value"}` with
//! the base64 bytes rather than dropped.

use axum::{body::Bytes, response::Response};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderValue, Method, StatusCode, header};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde::{Serialize, Serializer, ser::SerializeSeq};
use tonic::Code;

use super::json::{JSON_CONTENT_TYPE, WithOptions};
use crate::headers::RETRY_AFTER_SECONDS;

/// The type URL prefix every Any built here uses.
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// Everything that can stop a transcoded call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TranscodeError {
    /// No binding serves the path → 404 NOT_FOUND. The path is not echoed.
    #[error("no HTTP binding serves this path")]
    NoRoute,
    /// The path is served, but not for this method → 405 (status
    /// UNIMPLEMENTED, as grpc-gateway does) with `Allow`.
    #[error("{method} is not allowed here; allowed: {}", join(.allow))]
    MethodNotAllowed { method: Method, allow: Vec<Method> },
    /// The body exceeds `max_body_bytes` → 413 (status INVALID_ARGUMENT).
    #[error("the request body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A body that is not JSON, sent as another media type (a form, say)
    /// → 415 (status INVALID_ARGUMENT). A JSON body is read whatever its
    /// content type says (`curl -d` calls JSON a form), so only a body
    /// that fails to parse under a non-JSON type gets this.
    #[error("request bodies are JSON (application/json); this one is {content_type}")]
    UnsupportedMediaType { content_type: String },
    /// Malformed input: JSON, a path value, a query parameter, a header →
    /// 400 INVALID_ARGUMENT, with a BadRequest detail naming the field when
    /// there is one.
    #[error("{message}")]
    InvalidArgument {
        field: Option<String>,
        message: String,
    },
    /// The body stopped arriving: the client went away or broke its
    /// framing → 400 INVALID_ARGUMENT, though mostly nobody is there to
    /// read it.
    #[error("reading the request body: {0}")]
    BodyUnreadable(String),
    /// The gRPC method answered with a non-OK status → [`http_status`] of
    /// its code, its message and details as sent, its RFC 6750 challenge on
    /// 401/403, and its `retry-after` in seconds (the rate limiter's, on
    /// 429; kept as a number, since the variant's size is every
    /// transcoding result's).
    #[error("{code:?}: {message}")]
    Grpc {
        code: Code,
        message: String,
        details: Bytes,
        challenge: Option<HeaderValue>,
        retry_after: Option<u32>,
    },
    /// The transcoder itself failed (a reply it cannot decode, an encoding
    /// error) → 500 INTERNAL; logged, and the client sees "internal error".
    #[error("{0}")]
    Internal(String),
}

impl TranscodeError {
    /// The gRPC code the error is rendered with.
    pub fn code(&self) -> Code {
        match self {
            TranscodeError::NoRoute => Code::NotFound,
            TranscodeError::MethodNotAllowed { .. } => Code::Unimplemented,
            TranscodeError::BodyTooLarge { .. }
            | TranscodeError::UnsupportedMediaType { .. }
            | TranscodeError::InvalidArgument { .. }
            | TranscodeError::BodyUnreadable(_) => Code::InvalidArgument,
            // A failure must not read as success.
            TranscodeError::Grpc { code: Code::Ok, .. } | TranscodeError::Internal(_) => {
                Code::Internal
            }
            TranscodeError::Grpc { code, .. } => *code,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

fn join(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one gRPC code → HTTP status table (google/rpc/code.proto).
/// An error reply made outside the transcoder (load shedding, deadlines,
/// shutdown) in the same AIP-193 shape and status table, so HTTP clients
/// see one error format whoever answered.
pub fn error_response(code: Code, message: &str, http: Option<StatusCode>) -> Response {
    let (mapped, status_name) = row(code);
    let status = http.unwrap_or(mapped);
    let body = serde_json::json!({
        "error": {"code": status.as_u16(), "status": status_name, "message": message, "details": []}
    });
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// The canonical name of a gRPC code (`NOT_FOUND`), as in google/rpc/code.proto.
pub fn code_name(code: Code) -> &'static str {
    row(code).1
}

pub fn http_status(code: Code) -> StatusCode {
    row(code).0
}

fn row(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::Ok => (StatusCode::OK, "OK"),
        Code::Cancelled => (client_closed_request(), "CANCELLED"),
        Code::Unknown => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION"),
        Code::Aborted => (StatusCode::CONFLICT, "ABORTED"),
        Code::OutOfRange => (StatusCode::BAD_REQUEST, "OUT_OF_RANGE"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        Code::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Code::DataLoss => (StatusCode::INTERNAL_SERVER_ERROR, "DATA_LOSS"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    }
}

/// 499 (nginx's "client closed request"), which code.proto names for
/// CANCELLED; `http` has no constant for it.
fn client_closed_request() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

/// Renders errors: holds what decoding details needs.
#[derive(Debug)]
pub(crate) struct ErrorRenderer {
    /// The service's pool plus tonic-types' `google.rpc` descriptors.
    pool: DescriptorPool,
    options: SerializeOptions,
}

impl ErrorRenderer {
    pub fn new(pool: DescriptorPool, options: SerializeOptions) -> Self {
        Self { pool, options }
    }

    /// The one conversion of a [`TranscodeError`] to a response.
    pub fn render(&self, error: TranscodeError) -> Response {
        let code = error.code();
        let (message, details, http) = match &error {
            TranscodeError::NoRoute | TranscodeError::BodyUnreadable(_) => {
                (error.to_string(), Vec::new(), None)
            }
            TranscodeError::MethodNotAllowed { .. } => (
                error.to_string(),
                Vec::new(),
                Some(StatusCode::METHOD_NOT_ALLOWED),
            ),
            TranscodeError::BodyTooLarge { .. } => (
                error.to_string(),
                Vec::new(),
                Some(StatusCode::PAYLOAD_TOO_LARGE),
            ),
            TranscodeError::UnsupportedMediaType { .. } => (
                error.to_string(),
                Vec::new(),
                Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ),
            TranscodeError::InvalidArgument { field, message } => {
                let details = field
                    .as_ref()
                    .map(|f| bad_request(f, message))
                    .into_iter()
                    .collect();
                (message.clone(), details, None)
            }
            TranscodeError::Grpc { code: Code::Ok, .. } => {
                tracing::error!("a gRPC failure with status OK");
                ("internal error".to_owned(), Vec::new(), None)
            }
            TranscodeError::Grpc {
                code,
                message,
                details,
                challenge,
                ..
            } => {
                let details = tonic_types::pb::Status::decode(details.as_ref()).map(|s| s.details);
                // RFC 6750 §3.1: a malformed credential is an `invalid_request`,
                // which HTTP answers with 400 although gRPC can only say
                // UNAUTHENTICATED.
                let invalid_request = *code == Code::Unauthenticated
                    && challenge
                        .as_ref()
                        .and_then(|c| c.to_str().ok())
                        .is_some_and(|c| c.contains("error=\"invalid_request\""));
                let http = invalid_request.then_some(StatusCode::BAD_REQUEST);
                (message.clone(), details.unwrap_or_default(), http)
            }
            TranscodeError::Internal(cause) => {
                tracing::error!(%cause, "transcoding failed");
                ("internal error".to_owned(), Vec::new(), None)
            }
        };
        let (mapped, status_name) = row(code);
        let status = http.unwrap_or(mapped);
        let envelope = |anys| Envelope {
            error: Body {
                code: status.as_u16(),
                status: status_name,
                message: &message,
                details: Details {
                    anys,
                    pool: &self.pool,
                    options: &self.options,
                },
            },
        };
        // A detail that cannot be serialized must not cost the client the
        // error itself.
        let bytes = serde_json::to_vec(&envelope(&details)).unwrap_or_else(|err| {
            tracing::error!(%err, "serializing error details");
            serde_json::to_vec(&envelope(&[])).unwrap_or_default()
        });
        // The service's own advice first; any 503 gets the default.
        let retry_after = match &error {
            TranscodeError::Grpc { retry_after, .. } => retry_after.map(HeaderValue::from),
            _ => None,
        }
        .or_else(|| {
            (status == StatusCode::SERVICE_UNAVAILABLE)
                .then(|| HeaderValue::from_static(RETRY_AFTER_SECONDS))
        });
        let mut response = Response::new(axum::body::Body::from(bytes));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        match error {
            TranscodeError::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(&join(&allow)) {
                    headers.insert(header::ALLOW, value);
                }
            }
            TranscodeError::Grpc {
                challenge: Some(challenge),
                ..
            } if matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST
            ) =>
            {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
            _ => {}
        }
        if let Some(after) = retry_after {
            headers.insert(header::RETRY_AFTER, after);
        }
        response
    }
}

fn bad_request(field: &str, description: &str) -> prost_types::Any {
    use tonic_types::pb::{BadRequest, bad_request::FieldViolation};
    let detail = BadRequest {
        field_violations: vec![FieldViolation {
            field: field.to_owned(),
            description: description.to_owned(),
            ..Default::default()
        }],
    };
    prost_types::Any {
        type_url: format!("{TYPE_URL_PREFIX}google.rpc.BadRequest"),
        value: detail.encode_to_vec(),
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    status: &'static str,
    message: &'a str,
    details: Details<'a>,
}

struct Details<'a> {
    anys: &'a [prost_types::Any],
    pool: &'a DescriptorPool,
    options: &'a SerializeOptions,
}

impl Serialize for Details<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.anys.len()))?;
        for any in self.anys {
            match self.decoded(any) {
                Some(message) => seq.serialize_element(&WithOptions(&message, self.options))?,
                None => seq.serialize_element(&Opaque {
                    type_url: &any.type_url,
                    value: STANDARD.encode(&any.value),
                })?,
            }
        }
        seq.end()
    }
}

impl Details<'_> {
    /// The detail as a dynamic Any, if its type is known and its bytes
    /// decode: then prost-reflect's Any serializer inlines the fields.
    fn decoded(&self, any: &prost_types::Any) -> Option<DynamicMessage> {
        let name = any.type_url.rsplit('/').next()?;
        let desc = self.pool.get_message_by_name(name)?;
        DynamicMessage::decode(desc, any.value.as_slice()).ok()?;
        let mut dynamic =
            DynamicMessage::new(self.pool.get_message_by_name("google.protobuf.Any")?);
        dynamic.transcode_from(any).ok()?;
        Some(dynamic)
    }
}

/// A detail whose type is unknown: kept, not dropped.
#[derive(Serialize)]
struct Opaque<'a> {
    #[serde(rename = "@type")]
    type_url: &'a str,
    value: String,
}
