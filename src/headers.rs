//! Header names of the protocols we speak, as constants.
//!
//! `HeaderMap` lookups by `&str` parse and validate the name on every call
//! (a few hundred instructions each, several per call on the hot paths);
//! a `HeaderName` constant is parsed once, at compile time.

use http::HeaderName;

/// The gRPC status code, in trailers (or headers, for trailers-only replies).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The gRPC status message, percent-encoded.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// The serialized `google.rpc.Status`, base64.
pub const GRPC_STATUS_DETAILS_BIN: HeaderName = HeaderName::from_static("grpc-status-details-bin");
/// The caller's deadline, `<digits><H|M|S|m|u|n>`.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// The HTTP client's retry key (draft-ietf-httpapi-idempotency-key-header).
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The correlation id every response carries.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
