//! What the verified-token cache saves: checking a token the server has seen
//! before, against a full RS256 verification of the same token (issue 6:
//! the cache must make a repeat check at least 10x cheaper).
//!
//! `cargo bench --bench auth` (about 10 s). Both verifiers hold the same
//! fixed key, so no JWKS fetch is involved; "cache off" is
//! `--token-cache-size 0`.

use std::{
    collections::HashMap,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use timesheets::{
    auth::{
        TokenPolicy, TokenVerifier,
        keys::{Algorithm, KeyStore, parse_jwks},
    },
    dev::{DevClaims, SigningKey},
};

const ISSUER: &str = "https://tenant.example/";
const AUDIENCE: &str = "https://api.exampleco.com/timesheets";
const IDENTITY_CLAIM: &str = "https://api.exampleco.com/email";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    token: String,
    cached: TokenVerifier,
    uncached: TokenVerifier,
}

fn verifier(key: &SigningKey, cache_capacity: usize) -> TokenVerifier {
    let jwks = serde_json::json!({ "keys": [key.jwk()] }).to_string();
    let keys = parse_jwks(jwks.as_bytes()).expect("the dev key's JWKS parses");
    let policy = TokenPolicy {
        audiences: vec![AUDIENCE.into()],
        algorithms: vec![Algorithm::RS256],
        leeway: Duration::from_secs(30),
        identity_claim: IDENTITY_CLAIM.into(),
        scope_claims: vec!["scope".into()],
        max_token_bytes: 8192,
        require_typ: None,
        cache_capacity,
    };
    let issuers = HashMap::from([(ISSUER.to_owned(), Arc::new(KeyStore::fixed(keys)))]);
    TokenVerifier::new(policy, issuers)
}

fn fixture() -> Fixture {
    let key = SigningKey::generate().expect("RSA-2048 key generation");
    let claims = DevClaims {
        issuer: ISSUER,
        audience: AUDIENCE,
        subject: "auth0|bench",
        identity_claim: IDENTITY_CLAIM,
        email: Some("bench.user@exampleco.com"),
        scopes: &["create:timesheets", "read:timesheets"],
        expires_in: 3600,
    };
    let token = key.sign(&claims.to_json()).expect("signing the token");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let fixture = Fixture {
        runtime,
        cached: verifier(&key, 10_000),
        uncached: verifier(&key, 0),
        token,
    };
    // Both accept the token; this also puts it in the cache.
    for verifier in [&fixture.cached, &fixture.uncached] {
        fixture
            .runtime
            .block_on(verifier.verify(&fixture.token))
            .expect("the bench token is valid");
    }
    fixture
}

fn repeated_token(c: &mut Criterion) {
    let f = fixture();
    let mut group = c.benchmark_group("verify a repeated token");
    group.bench_function("full RS256 verification (cache off)", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(f.uncached.verify(black_box(&f.token)).await) })
    });
    group.bench_function("verified-token cache hit", |b| {
        b.to_async(&f.runtime)
            .iter(|| async { black_box(f.cached.verify(black_box(&f.token)).await) })
    });
    group.finish();

    // Criterion reports each function alone; print the ratio the issue asks for
    // from a short fixed-count run of each, so the claim reads off one line.
    let per_call = |verifier: &TokenVerifier, n: u32| {
        let started = Instant::now();
        f.runtime.block_on(async {
            for _ in 0..n {
                black_box(verifier.verify(black_box(&f.token)).await).expect("valid");
            }
        });
        started.elapsed() / n
    };
    let full = per_call(&f.uncached, 500);
    let hit = per_call(&f.cached, 50_000);
    println!(
        "verified-token cache: {hit:?} per hit vs {full:?} per full RS256 check: {:.0}x cheaper (target >= 10x)",
        full.as_secs_f64() / hit.as_secs_f64()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = repeated_token
}
criterion_main!(benches);
