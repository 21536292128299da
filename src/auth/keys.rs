//! Signing keys per issuer: JWKS parsing, caching and refetching.
//!
//! A [`KeyStore`] holds one issuer's keys. Remote stores fetch the JWKS at
//! startup (without failing startup if the provider is down) and refetch
//! when a token names an unknown `kid`: single-flight, so concurrent
//! requests share one fetch, and rate-limited, so a flood of random kids
//! costs the identity provider at most one fetch per cooldown.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::time::Instant;

use super::{AuthError, Rejection};

/// RFC 8725 §3.5 / NIST: RSA keys below 2048 bits are refused.
const MIN_RSA_BITS: usize = 2048;

/// Tunables of a remote key store; defaults follow jwks-rsa, jose and Envoy.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// A slow provider must not stall requests that wait on a rotation refetch.
    pub timeout: Duration,
    /// A JWKS is a few KiB; anything larger is refused before parsing.
    pub max_body_bytes: usize,
    /// At most one unknown-`kid` refetch per this interval, so random kids
    /// cannot be used to hammer the identity provider.
    pub refetch_cooldown: Duration,
    /// While no key has ever been loaded, retry this often at most.
    pub empty_retry: Duration,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_body_bytes: 64 * 1024,
            refetch_cooldown: Duration::from_secs(30),
            empty_retry: Duration::from_secs(1),
        }
    }
}

/// The key family a JWK belongs to, which decides the algorithms it can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// One usable verification key from a JWKS.
pub struct VerifyingKey {
    pub kid: Option<String>,
    family: Family,
    /// The JWK's own `alg`, when it pins one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Whether this key may verify a token signed with `alg`: the key type
    /// must fit and, if the JWK names an algorithm, it must be that one.
    pub fn usable_with(&self, alg: Algorithm) -> bool {
        let family_fits = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => self.family == Family::Rsa,
            Algorithm::ES256 => self.family == Family::EcP256,
            Algorithm::ES384 => self.family == Family::EcP384,
            Algorithm::EdDSA => self.family == Family::Ed25519,
            _ => false,
        };
        family_fits && self.alg.is_none_or(|pinned| pinned == alg)
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// Parses an asymmetric JWS algorithm name, exactly and case-sensitively.
/// HMAC and `none` are not representable here at all.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

#[derive(Deserialize)]
struct JwkSetDoc {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct JwkDoc {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS document, keeping the keys usable for signatures and
/// skipping (with a log line) any it cannot use, so one odd key never takes
/// the others down.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<VerifyingKey>, String> {
    let doc: JwkSetDoc = serde_json::from_slice(body).map_err(|e| format!("invalid JWKS: {e}"))?;
    let mut keys = Vec::with_capacity(doc.keys.len());
    for raw in doc.keys {
        match serde_json::from_value::<JwkDoc>(raw)
            .map_err(|e| e.to_string())
            .and_then(parse_jwk)
        {
            Ok(key) => keys.push(key),
            Err(why) => tracing::warn!(%why, "skipping unusable JWK"),
        }
    }
    Ok(keys)
}

fn parse_jwk(jwk: JwkDoc) -> Result<VerifyingKey, String> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("key use is not sig".into());
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(parse_algorithm(name).ok_or("unsupported alg")?),
    };
    let component = |v: &Option<String>, name: &str| v.clone().ok_or(format!("missing {name}"));
    let (family, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = component(&jwk.n, "n")?;
            let e = component(&jwk.e, "e")?;
            let modulus = URL_SAFE_NO_PAD
                .decode(&n)
                .map_err(|_| "n is not base64url")?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                return Err(format!("RSA key shorter than {MIN_RSA_BITS} bits"));
            }
            let key = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
            (Family::Rsa, key)
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let x = component(&jwk.x, "x")?;
            let y = component(&jwk.y, "y")?;
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            (
                if crv == "P-256" {
                    Family::EcP256
                } else {
                    Family::EcP384
                },
                key,
            )
        }
        ("OKP", Some("Ed25519")) => {
            let x = component(&jwk.x, "x")?;
            (
                Family::Ed25519,
                DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?,
            )
        }
        (kty, crv) => return Err(format!("unsupported key type {kty} {crv:?}")),
    };
    Ok(VerifyingKey {
        kid: jwk.kid,
        family,
        alg,
        key,
    })
}

/// Issuer and JWKS URLs must be https, except on loopback for development.
pub fn check_transport(url: &str) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("{url:?} is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => anyhow::bail!("{url:?} must use https (plain http is allowed only on loopback)"),
    }
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    fn new(keys: Vec<VerifyingKey>) -> Self {
        let all: Vec<_> = keys.into_iter().map(Arc::new).collect();
        let by_kid = all
            .iter()
            .filter_map(|k| Some((k.kid.clone()?, Arc::clone(k))))
            .collect();
        Self { by_kid, all }
    }

    /// `Ok(None)` when no key fits, so the caller may refetch.
    fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<Arc<VerifyingKey>>, Rejection> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) if key.usable_with(alg) => Ok(Some(Arc::clone(key))),
                Some(_) => Err(Rejection::AlgorithmNotAllowed),
                None => Ok(None),
            },
            // No kid: only unambiguous when a single key fits.
            None => {
                let mut fitting = self.all.iter().filter(|k| k.usable_with(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(Some(Arc::clone(key))),
                    _ => Ok(None),
                }
            }
        }
    }
}

#[derive(Default)]
struct FetchState {
    /// Any fetch, including startup: paces retries while no key is loaded.
    last_attempt: Option<Instant>,
    /// Unknown-`kid` refetches only: the cooldown that protects the provider.
    last_refetch: Option<Instant>,
}

/// One issuer's signing keys.
pub struct KeyStore {
    /// `None` for a fixed key set (the `--dev` issuer), which never fetches.
    jwks_uri: Option<String>,
    http: reqwest::Client,
    settings: FetchSettings,
    keys: RwLock<Arc<KeySet>>,
    /// Serialises fetches: waiters find the result instead of fetching again.
    fetch: tokio::sync::Mutex<FetchState>,
    /// Bumped after every fetch attempt, so a waiter can tell one happened.
    attempts: AtomicU64,
}

impl KeyStore {
    /// A store with fixed keys, e.g. the embedded dev issuer's.
    pub fn fixed(keys: Vec<VerifyingKey>) -> Self {
        Self::build(None, reqwest::Client::new(), FetchSettings::default(), keys)
    }

    /// A store that loads keys from `jwks_uri`.
    pub fn remote(jwks_uri: String, http: reqwest::Client, settings: FetchSettings) -> Self {
        Self::build(Some(jwks_uri), http, settings, Vec::new())
    }

    fn build(
        jwks_uri: Option<String>,
        http: reqwest::Client,
        settings: FetchSettings,
        keys: Vec<VerifyingKey>,
    ) -> Self {
        Self {
            jwks_uri,
            http,
            settings,
            keys: RwLock::new(Arc::new(KeySet::new(keys))),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            attempts: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        // A poisoned lock only means a panic elsewhere mid-swap of an Arc; the
        // value inside is still a complete key set.
        Arc::clone(&self.keys.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Number of keys currently loaded.
    pub fn key_count(&self) -> usize {
        self.snapshot().all.len()
    }

    /// The key to verify a token with `kid` and `alg`, refetching once
    /// (subject to the cooldown) when the kid is unknown.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let seen = self.attempts.load(Ordering::Acquire);
        if let Some(key) = self
            .snapshot()
            .find(kid, alg)
            .map_err(AuthError::InvalidToken)?
        {
            return Ok(key);
        }
        if self.jwks_uri.is_none() {
            return Err(AuthError::InvalidToken(Rejection::UnknownSigningKey));
        }
        {
            let mut state = self.fetch.lock().await;
            if self.attempts.load(Ordering::Acquire) == seen {
                let (last, wait) = if self.key_count() == 0 {
                    (state.last_attempt, self.settings.empty_retry)
                } else {
                    (state.last_refetch, self.settings.refetch_cooldown)
                };
                if last.is_none_or(|at| at.elapsed() >= wait) {
                    let now = Instant::now();
                    state.last_attempt = Some(now);
                    state.last_refetch = Some(now);
                    // Failure is logged inside; the keys we had stay in place.
                    let _ = self.refresh_locked().await;
                }
            }
        }
        if self.key_count() == 0 {
            return Err(AuthError::KeysUnavailable);
        }
        self.snapshot()
            .find(kid, alg)
            .map_err(AuthError::InvalidToken)?
            .ok_or(AuthError::InvalidToken(Rejection::UnknownSigningKey))
    }

    /// Fetches the JWKS now (startup), unless another fetch is under way.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut state = self.fetch.lock().await;
        state.last_attempt = Some(Instant::now());
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> anyhow::Result<()> {
        let result = self.download().await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(keys) => {
                tracing::info!(count = keys.len(), uri = ?self.jwks_uri, "loaded signing keys");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(KeySet::new(keys));
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), uri = ?self.jwks_uri, "JWKS fetch failed");
                Err(err)
            }
        }
    }

    async fn download(&self) -> anyhow::Result<Vec<VerifyingKey>> {
        use anyhow::Context;
        let uri = self
            .jwks_uri
            .as_deref()
            .context("fixed key store has nothing to fetch")?;
        let mut response = self
            .http
            .get(uri)
            .timeout(self.settings.timeout)
            .send()
            .await
            .context("requesting JWKS")?
            .error_for_status()
            .context("JWKS endpoint answered with an error")?;
        let limit = self.settings.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            anyhow::bail!("JWKS larger than {limit} bytes");
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading JWKS body")? {
            if body.len() + chunk.len() > limit {
                anyhow::bail!("JWKS larger than {limit} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body).map_err(anyhow::Error::msg)
    }
}

/// The HTTP client for JWKS fetches: no redirects to another host.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_host = attempt
            .previous()
            .first()
            .is_some_and(|first| first.host_str() == attempt.url().host_str());
        if same_host && attempt.previous().len() < 3 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    Ok(reqwest::Client::builder().redirect(policy).build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_exact_and_asymmetric_only() {
        assert_eq!(parse_algorithm("RS256"), Some(Algorithm::RS256));
        for refused in ["rs256", "none", "None", "NONE", "HS256", "RS256 ", ""] {
            assert_eq!(parse_algorithm(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn only_https_or_loopback_urls_are_accepted() {
        assert!(check_transport("https://tenant.auth0.com/").is_ok());
        assert!(check_transport("http://127.0.0.1:8080/").is_ok());
        assert!(check_transport("http://localhost/").is_ok());
        assert!(check_transport("http://[::1]:9/").is_ok());
        assert!(check_transport("http://tenant.auth0.com/").is_err());
        assert!(check_transport("ftp://127.0.0.1/").is_err());
    }
}
