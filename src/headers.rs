//! The headers of the protocols we speak: their names, as constants, and
//! the content type that tells the protocols apart.
//!
//! `HeaderMap` lookups by `&str` parse and validate the name on every call
//! (a few hundred instructions each, several per call on the hot paths);
//! a `HeaderName` constant is parsed once, at compile time.
//!
//! [`Protocol`] lives here, not with one of its users, because the layers
//! that tell gRPC from JSON (admission, the gRPC-only routes, the
//! transcoder's fallback) must agree on it, and the transcoder depends on
//! nothing of the service's but this module.

use http::{HeaderMap, HeaderName, HeaderValue, Response, header};

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
/// The seconds a refused call should wait before it retries, sent as
/// `Retry-After` (or `retry-after` metadata) with shed, draining and
/// rate-limited answers on every protocol, a not-ready `/readyz`, and any
/// HTTP/JSON 503. One second: what causes them (a full queue, a drain
/// handing over, a key fetch, a database reconnect) passes quickly, and a
/// caller told less would only retry into the same refusal.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// How a request arrived, told by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    Json,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Grpc, Protocol::GrpcWeb, Protocol::Json];

    pub fn of(headers: &HeaderMap) -> Self {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // Media types are case-insensitive (RFC 9110 §8.3.1).
        let starts = |prefix: &str| {
            content_type
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        if starts("application/grpc-web") {
            Protocol::GrpcWeb
        } else if starts("application/grpc") {
            Protocol::Grpc
        } else {
            Protocol::Json
        }
    }

    /// The protocol the outer layer told from `request`'s headers (see
    /// `observe`), or told now when no outer layer ran.
    pub fn of_request<B>(request: &http::Request<B>) -> Self {
        match request.extensions().get::<Protocol>() {
            Some(protocol) => *protocol,
            None => Protocol::of(request.headers()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc-web",
            Protocol::Json => "json",
        }
    }

    /// A trailers-only gRPC reply carrying `status`, for a call answered
    /// before any gRPC service saw it. A gRPC-Web one is labelled as such,
    /// as text when `web_text` (see [`wants_grpc_web_text`]): no service's
    /// tonic-web layer is there to relabel it. (HTTP/JSON callers get the
    /// JSON error shape instead, from the transcoder.)
    pub fn trailers_only<B: Default>(self, web_text: bool, status: tonic::Status) -> Response<B> {
        let mut response = status.into_http();
        if self == Protocol::GrpcWeb {
            let content_type = if web_text {
                "application/grpc-web-text+proto"
            } else {
                "application/grpc-web+proto"
            };
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        response
    }
}

/// Whether a gRPC-Web caller asks for replies as base64 text: tonic-web
/// encodes the replies it relays so when `Accept` names the text type, and
/// a reply made without it must say the same.
pub fn wants_grpc_web_text(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).is_some_and(|accept| {
        accept == "application/grpc-web-text" || accept == "application/grpc-web-text+proto"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_comes_from_the_media_type_in_any_case() {
        let of = |content_type: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = content_type {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_str(value).expect("value"),
                );
            }
            Protocol::of(&headers)
        };
        assert_eq!(of(Some("application/grpc")), Protocol::Grpc);
        assert_eq!(of(Some("Application/GRPC+proto")), Protocol::Grpc);
        assert_eq!(of(Some("application/grpc-web-text")), Protocol::GrpcWeb);
        assert_eq!(of(Some("APPLICATION/grpc-WEB+proto")), Protocol::GrpcWeb);
        assert_eq!(of(Some("application/json")), Protocol::Json);
        assert_eq!(of(Some("application/grp")), Protocol::Json);
        assert_eq!(of(None), Protocol::Json);
    }

    #[test]
    fn a_grpc_web_trailers_only_reply_says_it_is_grpc_web_in_the_encoding_asked_for() {
        let content_type = |protocol: Protocol, accept: Option<&'static str>| {
            let mut request = HeaderMap::new();
            if let Some(accept) = accept {
                request.insert(header::ACCEPT, HeaderValue::from_static(accept));
            }
            let web_text = wants_grpc_web_text(&request);
            let response: Response<()> =
                protocol.trailers_only(web_text, tonic::Status::unimplemented("no"));
            assert_eq!(
                response.headers().get(GRPC_STATUS).map(|v| v.as_bytes()),
                Some(&b"12"[..]),
                "{protocol:?}"
            );
            response.headers()[header::CONTENT_TYPE].clone()
        };
        assert_eq!(content_type(Protocol::Grpc, None), "application/grpc");
        assert_eq!(
            content_type(Protocol::GrpcWeb, None),
            "application/grpc-web+proto"
        );
        assert_eq!(
            content_type(Protocol::GrpcWeb, Some("application/grpc-web")),
            "application/grpc-web+proto"
        );
        for text in [
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
        ] {
            assert_eq!(
                content_type(Protocol::GrpcWeb, Some(text)),
                "application/grpc-web-text+proto"
            );
        }
    }
}
