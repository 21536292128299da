//! The dev issuer's OAuth 2.0 token endpoint, `POST /oauth/token`: the
//! client credentials grant (RFC 6749 §4.4) where an Auth0 tenant has it,
//! so the `tokenUrl` of the OpenAPI document works under `--dev` too (an
//! OpenAPI tool's "Authorize" button, or any OAuth client library).
//!
//! The client id names a persona (`employee`, `manager`, `importer`) and
//! any secret is accepted: this issuer signs for whoever asks, which is why
//! `--dev` refuses to run beside a real one. The credentials come in the body
//! or as HTTP Basic (§2.3.1), the body as a form or, as Auth0 also takes
//! it, as JSON. Errors have RFC 6749 §5.2's shape, which OAuth clients read,
//! not the API's.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;

use super::{DevIssuer, Persona, TOKEN_SECS};

/// The parameters of a token request this endpoint reads; others (a client
/// secret, Auth0's `audience`) are accepted and ignored.
#[derive(Debug, Default, serde::Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
}

impl TokenRequest {
    /// The body as JSON when it says so, else as a form. A parameter with
    /// an empty value counts as omitted (§3.2).
    fn parse(headers: &HeaderMap, body: &[u8]) -> Option<Self> {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if json {
            let request: Self = serde_json::from_slice(body).ok()?;
            let given = |value: Option<String>| value.filter(|v| !v.is_empty());
            return Some(Self {
                grant_type: given(request.grant_type),
                client_id: given(request.client_id),
                scope: given(request.scope),
            });
        }
        let mut request = Self::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            let slot = match &*name {
                "grant_type" => &mut request.grant_type,
                "client_id" => &mut request.client_id,
                "scope" => &mut request.scope,
                _ => continue,
            };
            // A parameter sent twice is ambiguous (§3.1).
            if slot.replace(value.into_owned()).is_some() {
                return None;
            }
        }
        Some(request)
    }
}

/// The client id of an `Authorization: Basic` header: form-encoded, then
/// base64 (§2.3.1).
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let id = decoded
        .split_once(':')
        .map_or(decoded.as_str(), |(id, _)| id);
    url::form_urlencoded::parse(format!("id={id}").as_bytes())
        .next()
        .map(|(_, id)| id.into_owned())
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"timesheets dev issuer\""),
        );
    }
    response
}

pub(super) async fn token(
    State(dev): State<Arc<DevIssuer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(request) = TokenRequest::parse(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a form (or JSON) of token request parameters, each given once",
        );
    };
    match request.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the dev issuer grants client_credentials only",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            );
        }
    }
    let client_id = request.client_id.or_else(|| basic_client_id(&headers));
    let Some(persona) = client_id.as_deref().and_then(Persona::named) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client id must be a dev persona: employee, manager or importer",
        );
    };
    // A scope asked for narrows the persona's; one it lacks is refused
    // rather than silently dropped (§3.3).
    let scopes: Vec<&str> = match request.scope.as_deref() {
        None => persona.scopes.to_vec(),
        Some(asked) => {
            let asked: Vec<&str> = asked.split_whitespace().collect();
            if let Some(unknown) = asked.iter().find(|s| !persona.scopes.contains(s)) {
                let description = format!("{} does not hold {unknown}", persona.name);
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &description);
            }
            asked
        }
    };
    match dev.token_response(persona, &scopes, TOKEN_SECS) {
        Ok(body) => {
            let mut response = Json(body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(err) => {
            tracing::error!(error = ?err, "minting a dev token");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "minting the token failed",
            )
        }
    }
}
