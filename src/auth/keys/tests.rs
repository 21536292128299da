//! Key store lifecycle under paused time, against a scripted provider, and
//! the HTTP source against a loopback JWKS endpoint.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Mutex, atomic::AtomicUsize},
};

use super::*;
use crate::dev::SigningKey;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    /// Answers only after an hour: a provider that hangs.
    Hang,
}

/// A provider whose keys, availability and delay the test controls.
struct Scripted {
    jwks: Mutex<Vec<serde_json::Value>>,
    mode: Mutex<Mode>,
    delay: Duration,
    max_age: Option<Duration>,
    fetches: AtomicUsize,
}

impl Scripted {
    fn new(keys: &[&SigningKey]) -> Arc<Self> {
        Arc::new(Self {
            jwks: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            mode: Mutex::new(Mode::Up),
            delay: Duration::from_millis(50),
            max_age: None,
            fetches: AtomicUsize::new(0),
        })
    }

    fn with_max_age(keys: &[&SigningKey], max_age: Duration) -> Arc<Self> {
        let mut source = Arc::into_inner(Self::new(keys)).expect("sole owner");
        source.max_age = Some(max_age);
        Arc::new(source)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn publish(&self, key: &SigningKey) {
        self.jwks.lock().expect("lock").push(key.jwk());
    }

    fn withdraw(&self, key: &SigningKey) {
        self.jwks
            .lock()
            .expect("lock")
            .retain(|jwk| jwk["kid"] != key.kid());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JwksSource for Scripted {
    async fn fetch(&self) -> anyhow::Result<Fetched> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().expect("lock");
        match mode {
            Mode::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
            _ => tokio::time::sleep(self.delay).await,
        }
        if mode == Mode::Down {
            anyhow::bail!("provider down");
        }
        let doc = serde_json::json!({ "keys": *self.jwks.lock().expect("lock") });
        let keys = parse_jwks(doc.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
        Ok(Fetched {
            keys,
            max_age: self.max_age,
        })
    }
}

fn store(source: &Arc<Scripted>) -> Arc<KeyStore> {
    Arc::new(KeyStore::remote(
        Arc::clone(source) as Arc<dyn JwksSource>,
        KeySettings::default(),
    ))
}

fn key() -> SigningKey {
    SigningKey::generate().expect("keygen")
}

const RS256: Algorithm = Algorithm::RS256;

const ISSUER: &str = "https://tenant.example/";

/// A verifier with a verdict cache, trusting `keys` for [`ISSUER`].
fn verifier(keys: &Arc<KeyStore>) -> crate::auth::TokenVerifier {
    let policy = crate::auth::TokenPolicy {
        audiences: vec!["https://api.example/".into()],
        algorithms: vec![RS256],
        leeway: Duration::from_secs(30),
        identity_claim: "email".into(),
        scope_claims: vec!["scope".into()],
        max_token_bytes: 8192,
        require_typ: None,
        cache_capacity: 100,
    };
    crate::auth::TokenVerifier::new(
        policy,
        HashMap::from([(ISSUER.to_owned(), Arc::clone(keys))]),
    )
}

fn token(signing: &SigningKey) -> String {
    token_for(signing, "alice@exampleco.com")
}

/// Claims for [`ISSUER`] naming `email` as the caller.
fn claims_for(email: &str) -> serde_json::Value {
    crate::dev::DevClaims {
        issuer: ISSUER,
        audience: "https://api.example/",
        subject: "auth0|1",
        identity_claim: "email",
        email: Some(email),
        scopes: &["read:timesheets"],
        expires_in: 3 * 3600,
    }
    .to_json()
}

/// A token for [`ISSUER`] naming `email` as the caller.
fn token_for(signing: &SigningKey, email: &str) -> String {
    signing.sign(&claims_for(email)).expect("sign")
}

/// What the verdict cache answers for `token`: `Some(true)` a pass,
/// `Some(false)` a refusal, `None` "check it from scratch".
fn cached(verifier: &crate::auth::TokenVerifier, token: &str) -> Option<bool> {
    verifier
        .cached(token.as_bytes())
        .map(|verdict| verdict.is_ok())
}

/// A token whose verdict the verifier remembers, and what checked it.
struct Remembered {
    signing: SigningKey,
    source: Arc<Scripted>,
    keys: Arc<KeyStore>,
    verifier: crate::auth::TokenVerifier,
    token: String,
}

/// A token signed by a new key, published with `others` more beside it,
/// verified once, so its verdict is cached.
async fn remembered(others: usize) -> Remembered {
    let signing = key();
    let extra: Vec<SigningKey> = (0..others).map(|_| key()).collect();
    let published: Vec<&SigningKey> = std::iter::once(&signing).chain(&extra).collect();
    let source = Scripted::new(&published);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    let (verifier, token) = (verifier(&keys), token(&signing));
    verifier.verify(&token).await.expect("verifies");
    Remembered {
        signing,
        source,
        keys,
        verifier,
        token,
    }
}

#[tokio::test(start_paused = true)]
async fn a_cached_verdict_outlives_a_refresh_that_keeps_its_key() {
    let Remembered {
        source,
        keys,
        verifier,
        token,
        ..
    } = remembered(0).await;
    assert_eq!(cached(&verifier, &token), Some(true));
    // The routine refresh (or any other client's unknown kid) reloads the
    // same keys; the token's verdict must not change with it.
    source.publish(&key());
    keys.refresh().await.expect("refresh");
    assert_eq!(cached(&verifier, &token), Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_cached_verdict_ends_when_its_key_is_withdrawn() {
    let Remembered {
        signing,
        source,
        keys,
        verifier,
        token,
    } = remembered(1).await;
    source.withdraw(&signing);
    keys.refresh().await.expect("refresh");
    assert_eq!(cached(&verifier, &token), None);
    let err = verifier.verify(&token).await.expect_err("key withdrawn");
    assert_eq!(err, AuthError::InvalidToken(Rejection::UnknownSigningKey));
}

#[tokio::test(start_paused = true)]
async fn a_cached_verdict_ends_when_the_keys_are_past_max_stale() {
    let Remembered {
        source,
        verifier,
        token,
        ..
    } = remembered(0).await;
    source.set_mode(Mode::Down);
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    assert_eq!(
        cached(&verifier, &token),
        Some(true),
        "stale but within max_stale"
    );
    tokio::time::advance(Duration::from_secs(60 * 60)).await;
    assert_eq!(cached(&verifier, &token), None);
    let err = verifier.verify(&token).await.expect_err("too stale");
    assert_eq!(err, AuthError::KeysUnavailable);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_found_with_one_refetch() {
    let (old, new) = (key(), key());
    let source = Scripted::new(&[&old]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    source.publish(&new);
    keys.key_for(Some(new.kid()), RS256)
        .await
        .expect("new key after refetch");
    keys.key_for(Some(old.kid()), RS256)
        .await
        .expect("old key still published");
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refetch_outlives_the_call_that_started_it() {
    // A call with an unknown kid starts a refetch and spends the cooldown,
    // then goes away (its client reset the stream, or its deadline passed)
    // before the provider answers. The refetch must still finish, or the
    // rotated key stays unknown to every caller until the cooldown ends.
    let (old, new) = (key(), key());
    let source = Scripted::new(&[&old]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    source.publish(&new);
    let gone = tokio::time::timeout(
        Duration::from_millis(10),
        keys.key_for(Some("random-kid"), RS256),
    )
    .await;
    assert!(gone.is_err(), "the call went away mid-fetch");
    keys.key_for(Some(new.kid()), RS256)
        .await
        .expect("the rotated key, from the refetch the first call started");
    assert_eq!(source.fetches(), 2, "one refetch, within the cooldown");
}

#[tokio::test(start_paused = true)]
async fn stopping_the_refresher_ends_a_refetch_under_way() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    source.set_mode(Mode::Hang);
    let (stop, stopped) = watch::channel(false);
    let refresher = tokio::spawn(Arc::clone(&keys).run_refresher(stopped));
    let call = tokio::spawn({
        let keys = Arc::clone(&keys);
        async move { keys.key_for(Some("random-kid"), RS256).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    refresher.await.expect("the refresher stops");
    let answer = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ends with the refetch, not an hour later")
        .expect("task");
    assert!(answer.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_max_stale_of_forever_keeps_stale_keys_working() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = Arc::new(KeyStore::remote(
        Arc::clone(&source) as Arc<dyn JwksSource>,
        KeySettings {
            max_stale: Duration::MAX,
            ..KeySettings::default()
        },
    ));
    keys.refresh().await.expect("initial fetch");
    source.set_mode(Mode::Down);
    tokio::time::advance(Duration::from_secs(365 * 24 * 3600)).await;
    keys.key_for(Some(signing.kid()), RS256)
        .await
        .expect("stale keys still verify");
    assert!(keys.has_usable_keys());
}

#[tokio::test(start_paused = true)]
async fn an_outage_with_keys_cached_keeps_working_until_max_stale() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    source.set_mode(Mode::Down);
    // Past freshness (10 min) but within max_stale (1 h): still served.
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    keys.refresh().await.expect_err("the provider is down");
    keys.key_for(Some(signing.kid()), RS256)
        .await
        .expect("stale keys still verify");
    // Beyond freshness + max_stale with no successful refresh: unavailable.
    tokio::time::advance(Duration::from_secs(60 * 60)).await;
    let err = keys
        .key_for(Some(signing.kid()), RS256)
        .await
        .expect_err("too stale");
    assert_eq!(err, AuthError::KeysUnavailable);
}

#[tokio::test(start_paused = true)]
async fn an_outage_with_nothing_cached_is_unavailable_not_unauthenticated() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    source.set_mode(Mode::Down);
    let keys = store(&source);
    let err = keys
        .key_for(Some(signing.kid()), RS256)
        .await
        .expect_err("no keys");
    assert_eq!(err, AuthError::KeysUnavailable);
    // Recovery is picked up by the next call once the retry pacing allows.
    source.set_mode(Mode::Up);
    tokio::time::advance(Duration::from_secs(1)).await;
    keys.key_for(Some(signing.kid()), RS256)
        .await
        .expect("recovered");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_random_kids_fetches_at_most_once_per_cooldown() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    for round in 0..3 {
        for i in 0..200 {
            let err = keys
                .key_for(Some(&format!("random-{round}-{i}")), RS256)
                .await
                .expect_err("unknown");
            assert_eq!(err, AuthError::InvalidToken(Rejection::UnknownSigningKey));
        }
        assert_eq!(source.fetches(), 2 + round, "round {round}");
        tokio::time::advance(Duration::from_secs(30)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn five_hundred_concurrent_calls_on_a_cold_store_cause_one_fetch() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    let kid = signing.kid().to_owned();
    let calls: Vec<_> = (0..500)
        .map(|_| {
            let keys = Arc::clone(&keys);
            let kid = kid.clone();
            tokio::spawn(async move { keys.key_for(Some(&kid), RS256).await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await.expect("joined").expect("verified");
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_delays_no_call_whose_key_is_cached() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    source.set_mode(Mode::Hang);
    // An unknown kid starts a refetch that hangs while holding the fetch lock.
    let stuck = {
        let keys = Arc::clone(&keys);
        tokio::spawn(async move { keys.key_for(Some("rotated-away"), RS256).await.map(|_| ()) })
    };
    tokio::task::yield_now().await;
    let started = Instant::now();
    keys.key_for(Some(signing.kid()), RS256)
        .await
        .expect("cached key");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no waiting on the hung fetch"
    );
    stuck.abort();
}

#[tokio::test(start_paused = true)]
async fn the_background_refresher_fetches_before_expiry_and_stops_on_shutdown() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    let (stop, stopped) = watch::channel(false);
    let refresher = tokio::spawn(Arc::clone(&keys).run_refresher(stopped));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(source.fetches(), 1, "fetched at startup");
    assert!(keys.has_usable_keys());
    // Default freshness is 10 minutes; the refresh comes at 90% of it.
    tokio::time::sleep(Duration::from_secs(9 * 60 + 5)).await;
    assert_eq!(source.fetches(), 2, "refreshed ahead of expiry");
    stop.send(true).expect("refresher listening");
    refresher.await.expect("refresher stopped cleanly");
}

#[tokio::test(start_paused = true)]
async fn the_refresher_keeps_retrying_with_backoff_while_the_provider_is_down() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    source.set_mode(Mode::Down);
    let keys = store(&source);
    let (stop, stopped) = watch::channel(false);
    let refresher = tokio::spawn(Arc::clone(&keys).run_refresher(stopped));
    // Attempts at 0, 1, 3, 7, 15, 31 s (backoff 1, 2, 4, 8, 16 s).
    tokio::time::sleep(Duration::from_secs(32)).await;
    assert_eq!(source.fetches(), 6);
    assert!(!keys.has_usable_keys());
    source.set_mode(Mode::Up);
    tokio::time::sleep(Duration::from_secs(33)).await;
    assert!(keys.has_usable_keys(), "recovered without a restart");
    stop.send(true).expect("refresher listening");
    refresher.await.expect("refresher stopped cleanly");
}

#[tokio::test(start_paused = true)]
async fn the_refresher_stops_at_shutdown_even_in_the_middle_of_a_hanging_fetch() {
    let source = Scripted::new(&[&key()]);
    source.set_mode(Mode::Hang);
    let keys = store(&source);
    let (stop, stopped) = watch::channel(false);
    let refresher = tokio::spawn(Arc::clone(&keys).run_refresher(stopped));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(source.fetches(), 1, "the fetch is under way, and hangs");
    stop.send(true).expect("refresher listening");
    tokio::time::timeout(Duration::from_secs(1), refresher)
        .await
        .expect("stopped without waiting for the fetch")
        .expect("stopped cleanly");
}

#[tokio::test(start_paused = true)]
async fn a_key_rotated_in_while_the_provider_is_down_is_unavailable_not_unknown() {
    let (old, new) = (key(), key());
    let source = Scripted::new(&[&old]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    source.set_mode(Mode::Down);
    source.publish(&new);
    // The provider cannot be asked about the new kid: the token may well be
    // valid, so the caller is told to retry, not that its token is bad,
    // and so is every caller until a fetch succeeds.
    for _ in 0..2 {
        let err = keys
            .key_for(Some(new.kid()), RS256)
            .await
            .expect_err("provider down");
        assert_eq!(err, AuthError::KeysUnavailable);
    }
    assert_eq!(source.fetches(), 2, "one refetch, then the cooldown");
    keys.key_for(Some(old.kid()), RS256)
        .await
        .expect("known keys still verify");
    source.set_mode(Mode::Up);
    tokio::time::advance(Duration::from_secs(30)).await;
    keys.key_for(Some(new.kid()), RS256)
        .await
        .expect("found once the provider answers");
    // With the provider answering, a kid it does not publish is unknown.
    let err = keys
        .key_for(Some("never-published"), RS256)
        .await
        .expect_err("unknown");
    assert_eq!(err, AuthError::InvalidToken(Rejection::UnknownSigningKey));
}

#[tokio::test(start_paused = true)]
async fn a_cached_verdict_ends_when_a_kidless_tokens_key_is_no_longer_the_only_one() {
    let signing = key();
    let source = Scripted::new(&[&signing]);
    let keys = store(&source);
    keys.refresh().await.expect("initial fetch");
    let verifier = verifier(&keys);
    let kidless = serde_json::json!({"alg": "RS256"});
    let token = signing
        .sign_raw(&kidless, &claims_for("alice@exampleco.com"))
        .expect("sign");
    verifier.verify(&token).await.expect("the only key fits");
    assert_eq!(cached(&verifier, &token), Some(true));
    // A second key makes a kid-less token ambiguous: a fresh check refuses
    // it, so the remembered verdict must not outlive that.
    source.publish(&key());
    keys.refresh().await.expect("refresh");
    assert_eq!(cached(&verifier, &token), None);
    let err = verifier.verify(&token).await.expect_err("ambiguous");
    assert_eq!(err, AuthError::InvalidToken(Rejection::UnknownSigningKey));
}

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

#[test]
fn unusable_jwks_entries_are_skipped_one_by_one() {
    let good = key().jwk();
    let mut enc = good.clone();
    enc["use"] = "enc".into();
    let mut short = good.clone();
    short["n"] = URL_SAFE_NO_PAD.encode([0xab; 128]).into();
    let mut symmetric = good.clone();
    symmetric["kty"] = "oct".into();
    let mut hs = good.clone();
    hs["alg"] = "HS256".into();
    let doc = serde_json::json!({ "keys": [enc, short, symmetric, hs, good] });
    let keys = parse_jwks(doc.to_string().as_bytes()).expect("parses");
    assert_eq!(keys.len(), 1, "only the usable key survives");
}

#[test]
fn keys_sharing_a_kid_are_told_apart_by_the_algorithm_they_fit() {
    let mut rs256 = key().jwk();
    rs256["kid"] = "shared".into();
    let mut rs384 = key().jwk();
    rs384["kid"] = "shared".into();
    rs384["alg"] = "RS384".into();
    let doc = serde_json::json!({ "keys": [rs256, rs384] });
    let set = KeySet::new(parse_jwks(doc.to_string().as_bytes()).expect("parses"));
    for alg in [Algorithm::RS256, Algorithm::RS384] {
        let found = set
            .find(Some("shared"), alg)
            .expect("allowed")
            .expect("a key");
        assert!(found.usable_with(alg), "{alg:?}");
    }
    assert_eq!(
        set.find(Some("shared"), Algorithm::RS512).err(),
        Some(Rejection::AlgorithmNotAllowed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_providers_max_age_is_honoured_within_bounds() {
    let signing = key();
    // 5 s is below the 60 s floor: the refresh comes at 90% of 60 s.
    let source = Scripted::with_max_age(&[&signing], Duration::from_secs(5));
    let keys = store(&source);
    let (stop, stopped) = watch::channel(false);
    let refresher = tokio::spawn(Arc::clone(&keys).run_refresher(stopped));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(source.fetches(), 1);
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(source.fetches(), 1, "not before the floor");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(source.fetches(), 2, "refreshed at 90% of the 60 s floor");
    stop.send(true).expect("refresher listening");
    refresher.await.expect("refresher stopped cleanly");
}

/// A JWKS endpoint on loopback: `/jwks.json` serves `jwks`, `/moved`
/// redirects there on the same host, `/elsewhere` redirects to the same
/// port under another host name, `/huge` streams a body over 64 KiB.
async fn serve_jwks(jwks: serde_json::Value) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::{
        Router,
        response::{IntoResponse, Redirect},
        routing::get,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = jwks.to_string();
    let app = Router::new()
        .route("/jwks.json", get(move || async move { body }))
        .route(
            "/moved",
            get(|| async { Redirect::temporary("/jwks.json") }),
        )
        .route(
            "/elsewhere",
            get(move || async move {
                Redirect::temporary(&format!("http://localhost:{}/jwks.json", addr.port()))
            }),
        )
        .route(
            "/huge",
            get(|| async {
                // Streamed, so no Content-Length announces the size.
                let chunks = (0..80).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
                axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response()
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

fn http_source(addr: SocketAddr, path: &str) -> HttpJwks {
    HttpJwks::new(
        format!("http://{addr}/"),
        Some(format!("http://{addr}{path}")),
        http_client().expect("client"),
        Duration::from_secs(5),
        64 * 1024,
    )
}

#[tokio::test]
async fn a_jwks_redirect_is_followed_on_the_same_host_only() {
    let signing = key();
    let (addr, server) = serve_jwks(serde_json::json!({ "keys": [signing.jwk()] })).await;
    let fetched = http_source(addr, "/moved")
        .fetch()
        .await
        .expect("same-host redirect followed");
    assert_eq!(fetched.keys.len(), 1);
    let refused = http_source(addr, "/elsewhere").fetch().await;
    assert!(
        refused.is_err(),
        "a redirect to another host was followed: {} keys",
        refused.map(|f| f.keys.len()).unwrap_or_default()
    );
    server.abort();
}

#[tokio::test]
async fn a_jwks_body_over_the_limit_is_refused_even_without_a_length() {
    let (addr, server) = serve_jwks(serde_json::json!({ "keys": [] })).await;
    let err = http_source(addr, "/huge")
        .fetch()
        .await
        .err()
        .expect("an oversized body is refused");
    assert!(format!("{err:#}").contains("larger than"), "{err:#}");
    server.abort();
}

#[test]
fn a_key_is_identified_by_its_rfc_7638_thumbprint() {
    // The example of RFC 7638 §3.1, with the thumbprint the RFC gives.
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    }]});
    let keys = parse_jwks(jwks.to_string().as_bytes()).expect("parses");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(keys[0].thumbprint),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[tokio::test(start_paused = true)]
async fn an_identity_longer_than_a_user_id_may_be_is_refused() {
    let Remembered {
        signing, verifier, ..
    } = remembered(0).await;
    let long = format!(
        "{}@exampleco.com",
        "a".repeat(crate::domain::MAX_USER_ID_CHARS)
    );
    let err = verifier
        .verify(&token_for(&signing, &long))
        .await
        .expect_err("identity too long");
    assert!(matches!(err, AuthError::InvalidToken(_)), "{err:?}");
    // A token not seen before, so this is a full check too.
    let usual = token_for(&signing, "bob@exampleco.com");
    verifier.verify(&usual).await.expect("a usual identity");
}

#[test]
fn a_redirect_is_followed_only_to_the_same_host_and_never_down_to_plain_http() {
    let url = |u: &str| reqwest::Url::parse(u).expect("url");
    let first = url("https://tenant.example/.well-known/jwks.json");
    assert!(may_follow(&first, &url("https://tenant.example/keys"), 1));
    assert!(
        !may_follow(&first, &url("http://tenant.example/keys"), 1),
        "downgrade"
    );
    assert!(
        !may_follow(&first, &url("https://elsewhere.example/keys"), 1),
        "another host"
    );
    assert!(
        !may_follow(&first, &url("https://tenant.example/keys"), 3),
        "too many hops"
    );
    let local = url("http://127.0.0.1:9000/.well-known/jwks.json");
    assert!(
        may_follow(&local, &url("http://127.0.0.1:9000/keys"), 1),
        "loopback development"
    );
}

#[tokio::test]
async fn discovery_is_given_up_only_when_the_document_is_missing() {
    use axum::{Router, http::StatusCode, routing::get};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let asked = Arc::new(AtomicUsize::new(0));
    let jwks = serde_json::json!({ "keys": [key().jwk()] }).to_string();
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get({
                let asked = Arc::clone(&asked);
                // Rate-limited first (it may pass), then missing (it will not).
                move || async move {
                    match asked.fetch_add(1, Ordering::SeqCst) {
                        0 => StatusCode::TOO_MANY_REQUESTS,
                        _ => StatusCode::NOT_FOUND,
                    }
                }
            }),
        )
        .route("/.well-known/jwks.json", get(move || async move { jwks }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let source = HttpJwks::new(
        format!("http://{addr}/"),
        None,
        http_client().expect("client"),
        Duration::from_secs(5),
        64 * 1024,
    );
    for _ in 0..3 {
        let fetched = source.fetch().await.expect("keys from the well-known path");
        assert_eq!(fetched.keys.len(), 1);
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "asked again after the 429, not after the 404"
    );
    server.abort();
}
