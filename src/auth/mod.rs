//! Authentication and authorization: the one check every protocol passes.
//!
//! - `keys`: the per-issuer JWKS key store (fetch, cache, refetch on rotation).
//! - `token`: JWT parsing and validation policy (algorithms, claims, leeway).
//! - `scopes`: the method → scope table read from the proto's `required_scope`.
//! - `layer`: the tower layer that runs all of the above before any handler
//!   and hands the handler a [`Principal`] in the request extensions.
//!
//! [`AuthError`] is this layer's error type; [`AuthError::to_status`] is its
//! one conversion to the wire.

pub mod keys;
mod layer;
pub mod scopes;
pub mod token;

use std::{collections::HashMap, sync::Arc};

use http::HeaderMap;
use tonic::{Code, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};

pub use layer::AuthLayer;
pub use scopes::{Policy, ScopeTable};
pub use token::{TokenPolicy, TokenVerifier};

/// The authenticated caller, available to handlers via request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    /// Who owns the caller's timesheets: the identity claim, falling back to `sub`.
    pub identity: String,
    /// Granted scopes, as listed in the token.
    pub scopes: Vec<String>,
    /// The subject as logs show it ([`crate::observe::subject_tag`]),
    /// computed once per verified token rather than per call.
    pub tag: String,
}

impl Principal {
    /// Exact, case-sensitive match: `create:timesheetsX` does not grant `create:timesheets`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused. The wording is a fixed vocabulary so no
/// attacker-controlled input is ever echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Expired,
    NotYetValid,
    AudienceNotAccepted,
    IssuerNotAccepted,
    SignatureInvalid,
    UnknownSigningKey,
    AlgorithmNotAllowed,
    Malformed,
}

impl Rejection {
    pub fn description(self) -> &'static str {
        match self {
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not yet valid",
            Rejection::AudienceNotAccepted => "audience not accepted",
            Rejection::IssuerNotAccepted => "issuer not accepted",
            Rejection::SignatureInvalid => "signature invalid",
            Rejection::UnknownSigningKey => "unknown signing key",
            Rejection::AlgorithmNotAllowed => "algorithm not allowed",
            Rejection::Malformed => "malformed",
        }
    }

    /// Machine-readable reason for google.rpc.ErrorInfo.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Expired => "TOKEN_EXPIRED",
            Rejection::NotYetValid => "TOKEN_NOT_YET_VALID",
            Rejection::AudienceNotAccepted => "AUDIENCE_NOT_ACCEPTED",
            Rejection::IssuerNotAccepted => "ISSUER_NOT_ACCEPTED",
            Rejection::SignatureInvalid => "SIGNATURE_INVALID",
            Rejection::UnknownSigningKey => "UNKNOWN_SIGNING_KEY",
            Rejection::AlgorithmNotAllowed => "ALGORITHM_NOT_ALLOWED",
            Rejection::Malformed => "TOKEN_MALFORMED",
        }
    }
}

/// Everything the auth layer can refuse a call for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization` header, or another scheme → UNAUTHENTICATED.
    #[error("no bearer token")]
    MissingCredentials,
    /// A broken header: empty token, two tokens, bad characters → UNAUTHENTICATED.
    #[error("malformed authorization header")]
    InvalidRequest,
    /// The token failed a check → UNAUTHENTICATED.
    #[error("{}", .0.description())]
    InvalidToken(Rejection),
    /// The token lacks the method's scope → PERMISSION_DENIED.
    #[error("missing scope {0}")]
    InsufficientScope(String),
    /// The method declares no scope, so nobody may call it → PERMISSION_DENIED.
    #[error("method declares no required scope")]
    NoPolicy,
    /// No usable signing key could be had (identity provider down, nothing
    /// cached) → UNAVAILABLE: the token may well be valid, so retry later.
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

/// Realm in `WWW-Authenticate` challenges (RFC 6750 §3).
const REALM: &str = "timesheets";

impl AuthError {
    /// Machine-readable reason, as in the ErrorInfo and the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingCredentials => "MISSING_CREDENTIALS",
            AuthError::InvalidRequest => "INVALID_REQUEST",
            AuthError::InvalidToken(rejection) => rejection.reason(),
            AuthError::InsufficientScope(_) => "INSUFFICIENT_SCOPE",
            AuthError::NoPolicy => "NO_POLICY",
            AuthError::KeysUnavailable => "KEYS_UNAVAILABLE",
        }
    }

    /// The one conversion of auth failures to a gRPC status, carrying the
    /// RFC 6750 challenge in `www-authenticate` metadata and an ErrorInfo.
    pub fn to_status(&self) -> Status {
        let (code, message, challenge) = match self {
            AuthError::MissingCredentials => (
                Code::Unauthenticated,
                "Missing or invalid token: no bearer token".to_owned(),
                Some(format!("Bearer realm=\"{REALM}\"")),
            ),
            AuthError::InvalidRequest => (
                Code::Unauthenticated,
                "Missing or invalid token: malformed authorization header".to_owned(),
                Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_request\""
                )),
            ),
            AuthError::InvalidToken(rejection) => (
                Code::Unauthenticated,
                format!("Missing or invalid token: {}", rejection.description()),
                Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                    rejection.description()
                )),
            ),
            AuthError::InsufficientScope(scope) => (
                Code::PermissionDenied,
                format!("Forbidden: requires scope {scope}"),
                Some(format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
                )),
            ),
            AuthError::NoPolicy => (
                Code::PermissionDenied,
                "Forbidden: method declares no required scope".to_owned(),
                None,
            ),
            AuthError::KeysUnavailable => (
                Code::Unavailable,
                "Signing keys are unavailable; retry later".to_owned(),
                None,
            ),
        };
        let mut metadata = HashMap::new();
        if let AuthError::InsufficientScope(scope) = self {
            metadata.insert("scope".to_owned(), scope.clone());
        }
        let details =
            ErrorDetails::with_error_info(self.reason(), crate::error::ERROR_DOMAIN, metadata);
        let mut status = Status::with_error_details(code, message, details);
        if let Some(challenge) = challenge.and_then(|c| MetadataValue::try_from(c).ok()) {
            status.metadata_mut().insert("www-authenticate", challenge);
        }
        status
    }
}

/// Token verification plus the scope table: what the layer consults per call.
pub struct Authenticator {
    verifier: TokenVerifier,
    scopes: ScopeTable,
}

impl Authenticator {
    pub fn new(verifier: TokenVerifier, scopes: ScopeTable) -> Arc<Self> {
        Arc::new(Self { verifier, scopes })
    }

    /// Authenticates the caller and checks the scope `path` requires.
    /// `None` when `path` names no method of the service: there is no
    /// handler to protect, and the service itself answers UNIMPLEMENTED, as
    /// gRPC asks of an unknown method, whoever calls.
    pub async fn authorize(
        &self,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let scope = match self.scopes.policy(path) {
            Policy::Scope(scope) => scope,
            Policy::Undeclared => return Err(AuthError::NoPolicy),
            Policy::NotAMethod => return Ok(None),
        };
        let credentials = bearer_credentials(headers)?;
        // The cache holds only verified b64token strings (see
        // `TokenVerifier::verify`), so bytes found in it are a valid token
        // and skip the character check (most of a kilobyte per call).
        let principal = match self.verifier.cached(credentials) {
            Some(verdict) => verdict?,
            None => self.verifier.verify(b64token(credentials)?).await?,
        };
        if principal.has_scope(scope) {
            Ok(Some(principal))
        } else {
            Err(AuthError::InsufficientScope(scope.to_owned()))
        }
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// The credentials of a single `Authorization: Bearer <credentials>` header
/// (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1), trimmed
/// of spaces but not yet checked against the b64token syntax ([`b64token`]).
pub fn bearer_credentials(headers: &HeaderMap) -> Result<&[u8], AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest);
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::MissingCredentials);
    }
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let end = rest
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |last| last + 1);
    match &rest[start..end] {
        [] => Err(AuthError::InvalidRequest),
        token => Ok(token),
    }
}

/// The credentials as a token, if they are one b64token (RFC 6750 §2.1:
/// one token, no inner spaces).
pub fn b64token(credentials: &[u8]) -> Result<&str, AuthError> {
    if !is_b64token(credentials) {
        return Err(AuthError::InvalidRequest);
    }
    // Every b64token byte is ASCII, so this cannot fail.
    std::str::from_utf8(credentials).map_err(|_| AuthError::InvalidRequest)
}

/// Whether every byte is one of RFC 6750's b64token: ALPHA, DIGIT, `-._~+/`
/// and `=`. This runs over the whole token (most of a kilobyte) on every
/// call, so it folds comparisons with `&` instead of stopping at the first
/// bad byte: without the early exit the compiler checks many bytes per
/// instruction, three times faster than a table lookup per byte.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    token.iter().fold(true, |ok, &b| {
        ok & (b.is_ascii_alphanumeric()
            | matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                http::header::AUTHORIZATION,
                v.parse().expect("header value"),
            );
        }
        map
    }

    fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
        bearer_credentials(headers).and_then(b64token)
    }

    #[test]
    fn bearer_credentials_are_read_strictly() {
        let cases: &[(&str, &[&str], Result<&str, AuthError>)] = &[
            ("plain bearer", &["Bearer abc.def.ghi"], Ok("abc.def.ghi")),
            ("scheme is case-insensitive", &["bEaReR abc"], Ok("abc")),
            ("no header", &[], Err(AuthError::MissingCredentials)),
            (
                "another scheme",
                &["Basic dXNlcjpwYXNz"],
                Err(AuthError::MissingCredentials),
            ),
            ("empty token", &["Bearer "], Err(AuthError::InvalidRequest)),
            ("spaces around the token", &["Bearer   abc  "], Ok("abc")),
            (
                "a tab is not a space",
                &["Bearer abc\t"],
                Err(AuthError::InvalidRequest),
            ),
            (
                "a character outside b64token",
                &["Bearer ab,c"],
                Err(AuthError::InvalidRequest),
            ),
            ("scheme only", &["Bearer"], Err(AuthError::InvalidRequest)),
            (
                "two tokens in one header",
                &["Bearer a b"],
                Err(AuthError::InvalidRequest),
            ),
            (
                "two headers",
                &["Bearer a", "Bearer b"],
                Err(AuthError::InvalidRequest),
            ),
        ];
        for (description, values, expected) in cases {
            assert_eq!(&bearer_token(&headers(values)), expected, "{description}");
        }
        // Bytes beyond ASCII (obs-text) are allowed in a header value, not in a token.
        let mut opaque = HeaderMap::new();
        opaque.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer ab\xffc").expect("obs-text"),
        );
        assert_eq!(bearer_token(&opaque), Err(AuthError::InvalidRequest));
    }

    #[test]
    fn exactly_the_b64token_bytes_are_accepted_anywhere_in_a_token() {
        const B64TOKEN: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=";
        let long = vec![b'a'; 700];
        for b in 0..=u8::MAX {
            for at in [0, 350, 699] {
                let mut token = long.clone();
                token[at] = b;
                assert_eq!(
                    is_b64token(&token),
                    B64TOKEN.contains(&b),
                    "byte {b:#04x} at {at}"
                );
            }
        }
    }

    #[test]
    fn insufficient_scope_names_the_scope_in_the_challenge() {
        let status = AuthError::InsufficientScope("approve:timesheets".into()).to_status();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().starts_with("Forbidden: "));
        let challenge = status
            .metadata()
            .get("www-authenticate")
            .expect("challenge");
        assert_eq!(
            challenge.to_str().expect("ascii"),
            "Bearer realm=\"timesheets\", error=\"insufficient_scope\", scope=\"approve:timesheets\""
        );
    }
}
