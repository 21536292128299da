//! CORS for browsers on other origins: which origins, request and response
//! headers, and for how long a preflight answer holds.

use std::time::Duration;

use anyhow::Context;
use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long browsers may cache a preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// CORS for browsers on other origins: any origin unless `--cors-origin`
/// narrows it, the headers gRPC-Web and the REST clients send, and the
/// response headers they must be able to read.
pub(super) fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let allow_origin = if origins.is_empty() || origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).with_context(|| format!("--cors-origin {o:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(names(&[
            "authorization",
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "idempotency-key",
            "x-request-id",
        ]))
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "www-authenticate",
            "location",
            "link",
            "retry-after",
            "x-request-id",
        ]))
        .max_age(CORS_MAX_AGE))
}
