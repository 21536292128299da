//! JWT validation policy (RFC 7519, RFC 8725).
//!
//! The header and claims are parsed here rather than by a generic decoder so
//! that every rule is explicit: exact algorithm names from an allow-list,
//! no `crit`, keys only from the issuer's JWKS (never from the token), the
//! signature checked before any claim is trusted, and registered claims of
//! the wrong JSON type treated as invalid rather than absent.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::{AuthError, Principal, Rejection, keys::KeyStore, keys::parse_algorithm};

/// What a token must satisfy, beyond being signed by a configured issuer.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// A token must name at least one of these in `aud`.
    pub audiences: Vec<String>,
    /// Allowed `alg` values; anything else is refused before key lookup.
    pub algorithms: Vec<Algorithm>,
    /// Tolerated clock skew between us and the issuer.
    pub leeway: Duration,
    /// Claim naming the caller; `sub` is the fallback.
    pub identity_claim: String,
    /// Claim listing granted scopes (`scope`, or `permissions` for Auth0 RBAC).
    pub scope_claim: String,
    /// Tokens longer than this are refused before any parsing work.
    pub max_token_bytes: usize,
}

/// Verifies tokens against the configured issuers' keys and the policy.
pub struct TokenVerifier {
    policy: TokenPolicy,
    /// Exact `iss` value → that issuer's keys. Keys never cross issuers.
    issuers: HashMap<String, Arc<KeyStore>>,
}

fn malformed() -> AuthError {
    AuthError::InvalidToken(Rejection::Malformed)
}

fn reject(rejection: Rejection) -> AuthError {
    AuthError::InvalidToken(rejection)
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

/// A NumericDate claim: absent is `None`, present but not a number is malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(malformed),
        Some(_) => Err(malformed()),
    }
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(malformed()),
    }
}

impl TokenVerifier {
    pub fn new(policy: TokenPolicy, issuers: HashMap<String, Arc<KeyStore>>) -> Self {
        Self { policy, issuers }
    }

    /// Every configured issuer's key store.
    pub fn key_stores(&self) -> impl Iterator<Item = (&str, &Arc<KeyStore>)> {
        self.issuers
            .iter()
            .map(|(iss, store)| (iss.as_str(), store))
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// Validates `token` and returns the caller it identifies.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.policy.max_token_bytes {
            return Err(malformed());
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Also JWE (five segments) and anything that is not compact JWS.
            return Err(malformed());
        };
        let header = decode_json(header_b64)?;
        let alg = match header.get("alg") {
            Some(Value::String(name)) => parse_algorithm(name)
                .filter(|alg| self.policy.algorithms.contains(alg))
                .ok_or(reject(Rejection::AlgorithmNotAllowed))?,
            _ => return Err(malformed()),
        };
        // RFC 7515 §4.1.11: we understand no extensions, so any crit is fatal.
        if header.contains_key("crit") {
            return Err(malformed());
        }
        let kid = string_claim(&header, "kid")?;
        let claims = decode_json(claims_b64)?;
        let issuer = string_claim(&claims, "iss")?.ok_or(reject(Rejection::IssuerNotAccepted))?;
        let keys = self
            .issuers
            .get(issuer)
            .ok_or(reject(Rejection::IssuerNotAccepted))?;
        let key = keys.key_for(kid, alg).await?;

        let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
        let valid = !signature.is_empty()
            && jsonwebtoken::crypto::verify(
                signature,
                signing_input.as_bytes(),
                key.decoding_key(),
                alg,
            )
            .unwrap_or(false);
        if !valid {
            return Err(reject(Rejection::SignatureInvalid));
        }
        self.check_claims(&claims)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let leeway = self.policy.leeway.as_secs_f64();
        let exp = numeric_date(claims, "exp")?.ok_or(malformed())?;
        if now > exp + leeway {
            return Err(reject(Rejection::Expired));
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| now + leeway < nbf) {
            return Err(reject(Rejection::NotYetValid));
        }
        if numeric_date(claims, "iat")?.is_some_and(|iat| now + leeway < iat) {
            return Err(reject(Rejection::NotYetValid));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.policy.audiences.contains(aud),
            Some(Value::Array(auds)) => {
                let mut ok = false;
                for aud in auds {
                    let Value::String(aud) = aud else {
                        return Err(malformed());
                    };
                    ok |= self.policy.audiences.contains(aud);
                }
                ok
            }
            None => false,
            Some(_) => return Err(malformed()),
        };
        if !audience_ok {
            return Err(reject(Rejection::AudienceNotAccepted));
        }
        let subject = string_claim(claims, "sub")?.unwrap_or_default().to_owned();
        let identity = match claims.get(&self.policy.identity_claim) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => subject.clone(),
        };
        if identity.is_empty() {
            return Err(malformed());
        }
        let scopes = match claims.get(&self.policy.scope_claim) {
            None => Vec::new(),
            Some(Value::String(s)) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(malformed))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(malformed()),
        };
        Ok(Principal {
            subject,
            identity,
            scopes,
        })
    }
}
