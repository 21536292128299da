//! Fuzzes the token parser and validator, and the JWKS parser: no input may
//! panic, and no input without a valid signature from the issuer's key may
//! be accepted.
#![no_main]

use std::{collections::HashMap, sync::{Arc, LazyLock}, time::Duration};

use libfuzzer_sys::fuzz_target;
use timesheets::{
    auth::{TokenPolicy, TokenVerifier, keys::{Algorithm, KeyStore, parse_jwks}},
    dev::SigningKey,
};

const ISSUER: &str = "https://tenant.example/";

struct Harness {
    runtime: tokio::runtime::Runtime,
    verifier: TokenVerifier,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let key = SigningKey::generate().expect("keygen");
    let jwks = serde_json::json!({ "keys": [key.jwk()] }).to_string();
    let keys = parse_jwks(jwks.as_bytes()).expect("jwks");
    let policy = TokenPolicy {
        audiences: vec!["https://api.example/".into()],
        algorithms: vec![Algorithm::RS256],
        leeway: Duration::from_secs(30),
        identity_claim: "email".into(),
        scope_claims: vec!["scope".into()],
        max_token_bytes: 8192,
        require_typ: None,
        cache_capacity: 0,
    };
    let issuers = HashMap::from([(ISSUER.to_owned(), Arc::new(KeyStore::fixed(keys)))]);
    Harness {
        runtime: tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"),
        verifier: TokenVerifier::new(policy, issuers),
    }
});

fuzz_target!(|data: &[u8]| {
    let harness = &*HARNESS;
    let _ = parse_jwks(data);
    if let Ok(token) = std::str::from_utf8(data) {
        // Random bytes never carry the issuer's RS256 signature.
        let verdict = harness.runtime.block_on(harness.verifier.verify(token));
        assert!(verdict.is_err(), "accepted a forged token");
    }
});
