//! JWT validation policy (RFC 7519, RFC 8725, RFC 9068).
//!
//! The header and claims are parsed here rather than by a generic decoder so
//! that every rule is explicit: exact algorithm names from an allow-list,
//! no `crit`, no duplicate JSON keys, keys only from the issuer's JWKS
//! (never from the token), the signature checked before any claim is
//! trusted, and registered claims of the wrong JSON type treated as invalid
//! rather than absent.

use std::{
    collections::HashMap,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    AuthError, Principal, Rejection,
    keys::{KeyStore, VerifyingKey, parse_algorithm},
};

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
    /// Claims listing granted scopes (`scope`, and/or `permissions` for
    /// Auth0 RBAC); a scope in any of them counts.
    pub scope_claims: Vec<String>,
    /// Tokens longer than this are refused before any parsing work.
    pub max_token_bytes: usize,
    /// RFC 9068 mode: the header `typ` must be this (e.g. `at+jwt`).
    pub require_typ: Option<String>,
    /// Verified tokens remembered, so a repeated token skips the signature
    /// check; 0 disables the cache.
    pub cache_capacity: usize,
}

/// What the cache remembers about a verified token: enough to tell, on a
/// hit, whether a fresh check would still pick the same key and pass.
struct Verdict {
    principal: Arc<Principal>,
    exp: f64,
    issuer: String,
    kid: Option<String>,
    alg: Algorithm,
    key: Arc<VerifyingKey>,
}

/// Verifies tokens against the configured issuers' keys and the policy.
pub struct TokenVerifier {
    policy: TokenPolicy,
    /// Exact `iss` value → that issuer's keys. Keys never cross issuers.
    issuers: HashMap<String, Arc<KeyStore>>,
    /// Keyed by the whole token, compared byte for byte: a hit needs the
    /// exact string that was verified, so no digest (and no collision
    /// argument) stands between a lookup and the verdict, and a lookup
    /// costs a fast hash of the token instead of a SHA-256 of it. Only
    /// verified tokens are inserted, so the keys are at most
    /// `cache_capacity` tokens of at most `max_token_bytes` each.
    cache: Option<quick_cache::sync::Cache<Box<[u8]>, Arc<Verdict>>>,
}

fn malformed() -> AuthError {
    AuthError::InvalidToken(Rejection::Malformed)
}

fn reject(rejection: Rejection) -> AuthError {
    AuthError::InvalidToken(rejection)
}

/// A JSON object that refuses duplicate member names (RFC 8725 §3.11
/// and RFC 7515 §5.2: a parser must reject them or keep the last, and
/// rejecting removes any ambiguity between us and the issuer).
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

fn decode_json(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
    serde_json::from_slice::<UniqueObject>(&bytes)
        .map(|o| o.0)
        .map_err(|_| malformed())
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

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// What was learnt about a token before it failed, for the debug log.
#[derive(Default)]
struct Seen {
    kid: Option<String>,
    iss: Option<String>,
    sub: Option<String>,
}

impl TokenVerifier {
    pub fn new(policy: TokenPolicy, issuers: HashMap<String, Arc<KeyStore>>) -> Self {
        let cache = (policy.cache_capacity > 0)
            .then(|| quick_cache::sync::Cache::new(policy.cache_capacity));
        Self {
            policy,
            issuers,
            cache,
        }
    }

    /// Every configured issuer's key store.
    pub fn key_stores(&self) -> impl Iterator<Item = (&str, &Arc<KeyStore>)> {
        self.issuers
            .iter()
            .map(|(iss, store)| (iss.as_str(), store))
    }

    /// Validates `token` and returns the caller it identifies.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.len() > self.policy.max_token_bytes {
            return Err(malformed());
        }
        if let Some(verdict) = self.cached(token.as_bytes()) {
            return verdict;
        }
        let mut seen = Seen::default();
        match self.verify_uncached(token, &mut seen).await {
            Ok(verdict) => {
                let principal = Arc::clone(&verdict.principal);
                // `Authenticator::authorize` looks the cache up before it
                // checks a token's characters, so only b64token strings may
                // enter it. Every verified compact JWS is one (base64url
                // segments and dots); the check keeps that true for any
                // caller of `verify`, not by that argument alone.
                if let Some(cache) = &self.cache
                    && super::is_b64token(token.as_bytes())
                {
                    cache.insert(token.as_bytes().into(), Arc::new(verdict));
                }
                Ok(principal)
            }
            Err(err) => {
                tracing::debug!(
                    reason = %err, kid = ?seen.kid, iss = ?seen.iss, sub = ?seen.sub,
                    "token refused"
                );
                Err(err)
            }
        }
    }

    /// The verdict on exactly these bytes, if they were verified before and
    /// are still remembered: `None` means only that they must be verified.
    pub fn cached(&self, token: &[u8]) -> Option<Result<Arc<Principal>, AuthError>> {
        let verdict = self.cache.as_ref()?.get(token)?;
        self.recheck(&verdict)
    }

    /// A cache hit skips the signature, but time passes and keys change,
    /// and the cache must not change a verdict. An expired token is refused
    /// here; a token whose key is no longer vouched for (withdrawn, or the
    /// keys are past `max_stale`) is checked again from scratch, which
    /// refetches, refuses or answers UNAVAILABLE exactly as for a new one.
    fn recheck(&self, verdict: &Verdict) -> Option<Result<Arc<Principal>, AuthError>> {
        if unix_now() > verdict.exp + self.policy.leeway.as_secs_f64() {
            return Some(Err(reject(Rejection::Expired)));
        }
        self.issuers
            .get(&verdict.issuer)
            .is_some_and(|keys| {
                keys.still_vouches_for(verdict.kid.as_deref(), verdict.alg, &verdict.key)
            })
            .then(|| Ok(Arc::clone(&verdict.principal)))
    }

    async fn verify_uncached(&self, token: &str, seen: &mut Seen) -> Result<Verdict, AuthError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            // Also JWE (five segments) and anything that is not compact JWS.
            return Err(malformed());
        };
        let header = decode_json(header_b64)?;
        seen.kid = string_claim(&header, "kid")
            .ok()
            .flatten()
            .map(str::to_owned);
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
        if let Some(required) = &self.policy.require_typ {
            let typ = string_claim(&header, "typ")?.unwrap_or_default();
            let typ = typ.strip_prefix("application/").unwrap_or(typ);
            if !typ.eq_ignore_ascii_case(required) {
                return Err(malformed());
            }
        }
        let kid = string_claim(&header, "kid")?;
        let claims = decode_json(claims_b64)?;
        let issuer = string_claim(&claims, "iss")?.ok_or(reject(Rejection::IssuerNotAccepted))?;
        seen.iss = Some(issuer.to_owned());
        seen.sub = string_claim(&claims, "sub")
            .ok()
            .flatten()
            .map(str::to_owned);
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
        let (principal, exp) = self.check_claims(&claims)?;
        Ok(Verdict {
            principal: Arc::new(principal),
            exp,
            issuer: issuer.to_owned(),
            kid: kid.map(str::to_owned),
            alg,
            key,
        })
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(Principal, f64), AuthError> {
        let now = unix_now();
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
        // The identity becomes rows' user_id, held to the rules batch items
        // meet.
        if crate::domain::check_user_id(&identity).is_err() {
            return Err(malformed());
        }
        let mut scopes = Vec::new();
        for claim in &self.policy.scope_claims {
            match claims.get(claim) {
                None => {}
                Some(Value::String(s)) => {
                    scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned))
                }
                Some(Value::Array(items)) => {
                    for item in items {
                        let Value::String(s) = item else {
                            return Err(malformed());
                        };
                        scopes.push(s.clone());
                    }
                }
                Some(_) => return Err(malformed()),
            }
        }
        Ok((
            Principal {
                tag: crate::observe::subject_tag(&subject),
                subject,
                identity,
                scopes,
            },
            exp,
        ))
    }
}
