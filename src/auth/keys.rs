//! Signing keys per issuer: JWKS parsing, caching, refreshing and refetching.
//!
//! A [`KeyStore`] holds one issuer's keys. The lifecycle follows what
//! jose, jwks-rsa, Nimbus and Envoy converged on, fixing what users of the
//! original sample complained about:
//! - keys are fetched in the background, ahead of expiry, so requests
//!   never wait on a routine refresh, and startup never fails on an outage;
//! - an unknown `kid` triggers one refetch: single-flight (concurrent
//!   requests share it) and at most once per cooldown, so a flood of random
//!   kids cannot hammer the identity provider;
//! - when refreshes fail, the last good keys keep working for `max_stale`;
//!   only when no usable key exists does a call get UNAVAILABLE.
//!
//! Fetching sits behind [`JwksSource`] so the lifecycle can be tested with
//! paused time and a scripted provider.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{AuthError, Rejection};

/// RFC 8725 §3.5 / NIST SP 800-131A: RSA keys below 2048 bits are refused.
const MIN_RSA_BITS: usize = 2048;

/// Where an Auth0 tenant, and the dev issuer that stands in for one, serves
/// its OpenID discovery document, its JWKS and its token endpoint: paths
/// below the issuer URL.
pub mod well_known {
    pub const DISCOVERY: &str = "/.well-known/openid-configuration";
    pub const JWKS: &str = "/.well-known/jwks.json";
    pub const TOKEN: &str = "/oauth/token";

    /// `path` on `issuer`, which may end in `/` (Auth0's do).
    pub fn url(issuer: &str, path: &str) -> String {
        format!("{}{path}", issuer.trim_end_matches('/'))
    }
}

/// Lifecycle tunables; defaults follow jwks-rsa, jose, Nimbus and Envoy.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// How long fetched keys count as fresh when the response has no max-age.
    pub cache_ttl: Duration,
    /// Bounds on a `Cache-Control: max-age`, so a provider can neither make
    /// us refetch constantly nor pin keys for days.
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// At most one unknown-`kid` refetch per this interval.
    pub refetch_cooldown: Duration,
    /// How long past freshness the last good keys keep working while
    /// refreshes fail, so a provider outage is not a total outage.
    pub max_stale: Duration,
    /// While no usable key is loaded, requests retry the fetch this often at most.
    pub empty_retry: Duration,
    /// Background retry backoff after failures: doubles from min to max.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            empty_retry: Duration::from_secs(1),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
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
    /// The JWK's SHA-256 thumbprint (RFC 7638): what the key is, whichever
    /// fetch it came from.
    thumbprint: [u8; 32],
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

    /// The same key, published the same way: a token it verified would
    /// verify again, by the same `kid` and `alg` rules.
    fn same_as(&self, other: &VerifyingKey) -> bool {
        self.thumbprint == other.thumbprint && self.kid == other.kid && self.alg == other.alg
    }
}

/// RFC 7638 §3: SHA-256 over the key's required members, in lexicographic
/// order, without whitespace. The members are base64url (their decoding has
/// already succeeded) or fixed names, so none needs JSON escaping.
fn thumbprint(members: &[(&str, &str)]) -> [u8; 32] {
    let body = members
        .iter()
        .map(|(name, value)| format!("\"{name}\":\"{value}\""))
        .collect::<Vec<_>>()
        .join(",");
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("{{{body}}}").as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
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
    let (family, key, thumbprint) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
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
            let thumbprint = thumbprint(&[("e", &e), ("kty", "RSA"), ("n", &n)]);
            (Family::Rsa, key, thumbprint)
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let x = component(&jwk.x, "x")?;
            let y = component(&jwk.y, "y")?;
            let key = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            let family = if crv == "P-256" {
                Family::EcP256
            } else {
                Family::EcP384
            };
            let thumbprint = thumbprint(&[("crv", crv), ("kty", "EC"), ("x", &x), ("y", &y)]);
            (family, key, thumbprint)
        }
        ("OKP", Some("Ed25519")) => {
            let x = component(&jwk.x, "x")?;
            let key = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            let thumbprint = thumbprint(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", &x)]);
            (Family::Ed25519, key, thumbprint)
        }
        (kty, crv) => return Err(format!("unsupported key type {kty} {crv:?}")),
    };
    Ok(VerifyingKey {
        kid: jwk.kid,
        family,
        alg,
        key,
        thumbprint,
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

/// A successful fetch: the keys and how long the provider says to cache them.
pub struct Fetched {
    pub keys: Vec<VerifyingKey>,
    pub max_age: Option<Duration>,
}

/// Where a remote store's keys come from.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    async fn fetch(&self) -> anyhow::Result<Fetched>;
}

#[derive(Default)]
struct KeySet {
    /// Looked up on every verdict-cache hit; built from the provider's
    /// JWKS, never from callers, so a fast hasher is safe here.
    by_kid: foldhash::HashMap<String, Arc<VerifyingKey>>,
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
                // Keys may share a kid when their types differ (RFC 7517
                // §4.5), and the map holds only one of them: the one this
                // algorithm fits, if any.
                Some(_) => self
                    .all
                    .iter()
                    .find(|key| key.kid.as_deref() == Some(kid) && key.usable_with(alg))
                    .map(|key| Some(Arc::clone(key)))
                    .ok_or(Rejection::AlgorithmNotAllowed),
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

/// The keys held now, and until when they may be used.
struct Loaded {
    set: KeySet,
    /// Refresh before this; `None` for fixed keys, which never expire.
    fresh_until: Option<Instant>,
}

impl Loaded {
    fn usable(&self, now: Instant, max_stale: Duration) -> bool {
        // A `max_stale` too large to add (an operator's "forever") never ends.
        !self.set.all.is_empty()
            && self
                .fresh_until
                .is_none_or(|fresh| fresh.checked_add(max_stale).is_none_or(|end| now < end))
    }
}

#[derive(Default)]
struct FetchState {
    /// Any fetch: paces retries while no usable key is loaded.
    last_attempt: Option<Instant>,
    /// Unknown-`kid` refetches only: the cooldown that protects the provider.
    last_refetch: Option<Instant>,
}

/// One issuer's signing keys.
pub struct KeyStore {
    /// `None` for a fixed key set (the `--dev` issuer), which never fetches.
    source: Option<Arc<dyn JwksSource>>,
    settings: KeySettings,
    loaded: RwLock<Arc<Loaded>>,
    /// Serialises fetches: waiters find the result instead of fetching
    /// again. Shared with a refetch's task, which holds it while it runs.
    fetch: Arc<tokio::sync::Mutex<FetchState>>,
    /// Cancelled when the refresher stops (at shutdown): ends a refetch
    /// still under way, since no call that started one owns it.
    stopped: CancellationToken,
    /// Bumped after every fetch attempt, so a waiter can tell one happened.
    attempts: AtomicU64,
    /// Fetches that failed, for metrics; successes are `attempts - failures`.
    failures: AtomicU64,
    /// Whether the latest fetch failed: until one succeeds, a kid the keys
    /// held do not know may be one the provider has since published.
    last_fetch_failed: AtomicBool,
}

/// Fetch outcomes so far, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    pub succeeded: u64,
    pub failed: u64,
}

impl KeyStore {
    /// A store with fixed keys, e.g. the embedded dev issuer's.
    pub fn fixed(keys: Vec<VerifyingKey>) -> Self {
        Self::build(None, KeySettings::default(), keys)
    }

    /// A store that loads keys from `source`; call [`KeyStore::run_refresher`].
    pub fn remote(source: Arc<dyn JwksSource>, settings: KeySettings) -> Self {
        Self::build(Some(source), settings, Vec::new())
    }

    fn build(
        source: Option<Arc<dyn JwksSource>>,
        settings: KeySettings,
        keys: Vec<VerifyingKey>,
    ) -> Self {
        let fresh_until = source.as_ref().map(|_| Instant::now());
        Self {
            source,
            settings,
            loaded: RwLock::new(Arc::new(Loaded {
                set: KeySet::new(keys),
                fresh_until,
            })),
            fetch: Arc::new(tokio::sync::Mutex::new(FetchState::default())),
            stopped: CancellationToken::new(),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_fetch_failed: AtomicBool::new(false),
        }
    }

    fn snapshot(&self) -> Arc<Loaded> {
        // A poisoned lock only means a panic elsewhere mid-swap of an Arc;
        // the value inside is still a complete key set.
        Arc::clone(&self.loaded.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Number of keys currently loaded.
    pub fn key_count(&self) -> usize {
        self.snapshot().set.all.len()
    }

    /// Fetch outcomes so far.
    pub fn fetch_stats(&self) -> FetchStats {
        let attempts = self.attempts.load(Ordering::Acquire);
        let failed = self.failures.load(Ordering::Acquire);
        FetchStats {
            succeeded: attempts.saturating_sub(failed),
            failed,
        }
    }

    /// Whether a token could be verified right now without fetching.
    pub fn has_usable_keys(&self) -> bool {
        self.snapshot()
            .usable(Instant::now(), self.settings.max_stale)
    }

    /// Whether a token verified with `key` earlier would pass on the same
    /// keys now: the keys are still usable (within `max_stale`), and the
    /// token's `kid` and `alg` still pick `key` out of them, as they would
    /// for a token never seen (so a kid-less token whose key has gained a
    /// sibling is checked again, and refused as a new one would be). Every
    /// refresh builds new `VerifyingKey`s, so keys are compared by what they
    /// are, not by address.
    pub fn still_vouches_for(&self, kid: Option<&str>, alg: Algorithm, key: &VerifyingKey) -> bool {
        let loaded = self.snapshot();
        loaded.usable(Instant::now(), self.settings.max_stale)
            && matches!(loaded.set.find(kid, alg), Ok(Some(found)) if found.same_as(key))
    }

    /// The key to verify a token with `kid` and `alg`, refetching once
    /// (subject to the cooldown) when the kid is unknown.
    pub async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let seen = self.attempts.load(Ordering::Acquire);
        let loaded = self.snapshot();
        let usable = loaded.usable(Instant::now(), self.settings.max_stale);
        if usable && let Some(key) = loaded.set.find(kid, alg).map_err(AuthError::InvalidToken)? {
            return Ok(key);
        }
        if self.source.is_none() {
            return Err(AuthError::InvalidToken(Rejection::UnknownSigningKey));
        }
        {
            let mut state = Arc::clone(&self.fetch).lock_owned().await;
            // Someone else fetched while we waited for the lock: use theirs.
            if self.attempts.load(Ordering::Acquire) == seen {
                let (last, wait) = if usable {
                    (state.last_refetch, self.settings.refetch_cooldown)
                } else {
                    (state.last_attempt, self.settings.empty_retry)
                };
                if last.is_none_or(|at| at.elapsed() >= wait) {
                    let now = Instant::now();
                    state.last_attempt = Some(now);
                    if usable {
                        state.last_refetch = Some(now);
                    }
                    // The fetch is the store's, not this call's: a call that
                    // goes away (its client reset the stream, its deadline
                    // passed) must not abandon the fetch whose cooldown it
                    // has spent, or every caller until the cooldown ends is
                    // told a new key is unknown. The task holds the lock, so
                    // waiters still wait for its result.
                    let store = Arc::clone(self);
                    let fetch = tokio::spawn(async move {
                        tokio::select! {
                            // Failure is logged inside; the keys we had stay.
                            _ = store.refresh_locked() => {}
                            () = store.stopped.cancelled() => {}
                        }
                        drop(state);
                    });
                    let _ = fetch.await;
                }
            }
        }
        let loaded = self.snapshot();
        if !loaded.usable(Instant::now(), self.settings.max_stale) {
            return Err(AuthError::KeysUnavailable);
        }
        match loaded.set.find(kid, alg).map_err(AuthError::InvalidToken)? {
            Some(key) => Ok(key),
            // The provider could not be asked (now, or by the fetch whose
            // cooldown this is): the key may well be one it has published
            // since, so the token is not known to be bad. Retry later.
            None if self.last_fetch_failed.load(Ordering::Acquire) => {
                Err(AuthError::KeysUnavailable)
            }
            None => Err(AuthError::InvalidToken(Rejection::UnknownSigningKey)),
        }
    }

    /// Fetches the keys now, waiting for any fetch already under way.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut state = self.fetch.lock().await;
        state.last_attempt = Some(Instant::now());
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> anyhow::Result<()> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let result = source.fetch().await;
        self.last_fetch_failed
            .store(result.is_err(), Ordering::Release);
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(fetched) => {
                let ttl = fetched
                    .max_age
                    .unwrap_or(self.settings.cache_ttl)
                    .clamp(self.settings.min_ttl, self.settings.max_ttl);
                tracing::info!(
                    count = fetched.keys.len(),
                    ttl_s = ttl.as_secs(),
                    "loaded signing keys"
                );
                let loaded = Loaded {
                    set: KeySet::new(fetched.keys),
                    fresh_until: Some(Instant::now() + ttl),
                };
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
                Ok(())
            }
            Err(err) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(error = %format!("{err:#}"), "JWKS fetch failed; keeping the last good keys");
                Err(err)
            }
        }
    }

    /// When the background refresher should fetch next: shortly before the
    /// keys go stale, so requests never wait for a routine refresh.
    fn next_refresh(&self) -> Option<Instant> {
        let fresh_until = self.snapshot().fresh_until?;
        // Refresh at 90% of the remaining freshness, and not in a busy loop.
        let now = Instant::now();
        let remaining = fresh_until.saturating_duration_since(now);
        Some(now + remaining.mul_f64(0.9))
    }

    /// Keeps the keys fresh until `shutdown` flips to true: fetches at once,
    /// then ahead of each expiry, backing off after failures. Fixed stores
    /// return immediately.
    pub async fn run_refresher(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.source.is_none() {
            return;
        }
        // However the refresher ends (stopped, or aborted by its owner), a
        // refetch still under way ends with it.
        let _stop_refetches = self.stopped.clone().drop_guard();
        let mut backoff = self.settings.retry_min;
        let mut wake = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            // A fetch can outlast the shutdown grace (discovery, then the
            // JWKS, each up to its timeout): stopping wins over it.
            let refreshed = tokio::select! {
                refreshed = self.refresh() => refreshed,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match refreshed {
                Ok(()) => {
                    backoff = self.settings.retry_min;
                    wake = self
                        .next_refresh()
                        .unwrap_or_else(|| Instant::now() + self.settings.cache_ttl);
                }
                Err(_) => {
                    wake = Instant::now() + backoff;
                    backoff = (backoff * 2).min(self.settings.retry_max);
                }
            }
        }
    }
}

/// Fetches a JWKS over HTTP, discovering its URL from the issuer's
/// OpenID configuration when none is configured.
pub struct HttpJwks {
    issuer: String,
    jwks_uri: Option<String>,
    discovered: tokio::sync::Mutex<Option<String>>,
    http: reqwest::Client,
    /// A slow provider must not stall requests waiting on a rotation refetch.
    timeout: Duration,
    /// A JWKS is a few KiB; anything larger is refused before parsing.
    max_body_bytes: usize,
}

impl HttpJwks {
    pub fn new(
        issuer: String,
        jwks_uri: Option<String>,
        http: reqwest::Client,
        timeout: Duration,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            issuer,
            jwks_uri,
            discovered: tokio::sync::Mutex::new(None),
            http,
            timeout,
            max_body_bytes,
        }
    }

    async fn get(&self, url: &str) -> anyhow::Result<(Vec<u8>, Option<Duration>)> {
        use anyhow::Context;
        let mut response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .with_context(|| format!("requesting {url}"))?
            .error_for_status()
            .with_context(|| format!("{url} answered with an error"))?;
        let max_age = response
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
            .map(Duration::from_secs);
        let limit = self.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            anyhow::bail!("{url}: body larger than {limit} bytes");
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("reading {url}"))?
        {
            if body.len() + chunk.len() > limit {
                anyhow::bail!("{url}: body larger than {limit} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    /// The configured JWKS URL, or the one the issuer's discovery document
    /// names, or `{issuer}.well-known/jwks.json` when discovery fails.
    async fn jwks_uri(&self) -> String {
        if let Some(uri) = &self.jwks_uri {
            return uri.clone();
        }
        let mut discovered = self.discovered.lock().await;
        if let Some(uri) = discovered.as_ref() {
            return uri.clone();
        }
        let from_discovery = async {
            let (body, _) = self
                .get(&well_known::url(&self.issuer, well_known::DISCOVERY))
                .await?;
            #[derive(Deserialize)]
            struct Discovery {
                jwks_uri: String,
            }
            let doc: Discovery = serde_json::from_slice(&body)?;
            check_transport(&doc.jwks_uri)?;
            anyhow::Ok(doc.jwks_uri)
        };
        match from_discovery.await {
            Ok(uri) => {
                *discovered = Some(uri.clone());
                uri
            }
            Err(err) => {
                tracing::debug!(error = %format!("{err:#}"), "OpenID discovery failed; using the well-known JWKS path");
                let fallback = well_known::url(&self.issuer, well_known::JWKS);
                // A provider that answers 404 or 410 has no discovery
                // document: it is not asked again, so a refetch waits for
                // one request, not two. Anything else (429, 403 from a
                // proxy, a timeout, a 5xx) may pass; discovery is retried.
                let absent = err
                    .chain()
                    .filter_map(|e| e.downcast_ref::<reqwest::Error>())
                    .filter_map(reqwest::Error::status)
                    .any(|s| s == http::StatusCode::NOT_FOUND || s == http::StatusCode::GONE);
                if absent {
                    *discovered = Some(fallback.clone());
                }
                fallback
            }
        }
    }
}

#[async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> anyhow::Result<Fetched> {
        let uri = self.jwks_uri().await;
        let (body, max_age) = self.get(&uri).await?;
        let keys = parse_jwks(&body).map_err(anyhow::Error::msg)?;
        Ok(Fetched { keys, max_age })
    }
}

/// The HTTP client for JWKS fetches: redirects only within the same host.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let follow = attempt
            .previous()
            .first()
            .is_some_and(|first| may_follow(first, attempt.url(), attempt.previous().len()));
        if follow {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    Ok(reqwest::Client::builder().redirect(policy).build()?)
}

/// A redirect is followed only to the same host, a few hops deep, and
/// under the same transport rule as the configured URLs: keys fetched over
/// https must not arrive over plain http after a redirect.
fn may_follow(first: &reqwest::Url, next: &reqwest::Url, hops_so_far: usize) -> bool {
    first.host_str() == next.host_str() && hops_so_far < 3 && check_transport(next.as_str()).is_ok()
}

#[cfg(test)]
mod tests;
