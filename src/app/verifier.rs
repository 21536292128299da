//! The token verifier from the configuration: the accepted audiences and
//! token policy, and one key store per issuer (remote JWKS refreshed in the
//! background, or the dev issuer's fixed key).

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use serde_json::json;

use super::Background;
use crate::{
    auth::{
        TokenPolicy, TokenVerifier,
        keys::{self, HttpJwks, KeySettings, KeyStore, parse_jwks},
    },
    config::{DEV_AUDIENCE, ServeConfig},
    dev::DevIssuer,
};

/// Checks the issuer and audience settings, then builds the key stores
/// (starting their refreshers on `background`) and the token policy.
pub(super) fn build_verifier(
    config: &ServeConfig,
    dev: Option<&DevIssuer>,
    background: &mut Background,
) -> anyhow::Result<TokenVerifier> {
    let mut audiences = config.audiences.clone();
    if dev.is_some() && audiences.is_empty() {
        audiences.push(DEV_AUDIENCE.to_owned());
    }
    // A stray TIMESHEETS_DEV=1 beside a real tenant would let anyone who
    // reaches the port mint tokens this server accepts: refuse to start.
    if dev.is_some() && !config.issuers.is_empty() {
        anyhow::bail!(
            "--dev runs an embedded issuer that signs tokens for anyone who asks; it does not combine with --issuer.\n  For an Auth0 tenant, drop --dev (and TIMESHEETS_DEV); for local development, drop --issuer"
        );
    }
    if dev.is_none() && (config.issuers.is_empty() || audiences.is_empty()) {
        anyhow::bail!(
            "no token issuer and audience configured.\n  For an Auth0 tenant: timesheets serve --issuer https://<tenant>.auth0.com/ --audience https://api.exampleco.com/timesheets\n  (or set TIMESHEETS_ISSUER and TIMESHEETS_AUDIENCE)\n  For local development: timesheets serve --dev"
        );
    }
    if config.jwks_uri.is_some() && config.issuers.len() != 1 {
        anyhow::bail!(
            "--jwks-uri applies to exactly one --issuer; {} were given",
            config.issuers.len()
        );
    }
    let http = keys::http_client().context("building the JWKS HTTP client")?;
    let settings = KeySettings {
        cache_ttl: config.jwks_cache_ttl,
        refetch_cooldown: config.jwks_refetch_interval,
        max_stale: config.jwks_max_stale,
        ..KeySettings::default()
    };
    let mut issuers = HashMap::new();
    for issuer in &config.issuers {
        keys::check_transport(issuer).context("--issuer")?;
        if let Some(uri) = &config.jwks_uri {
            keys::check_transport(uri).context("--jwks-uri")?;
        }
        let source = HttpJwks::new(
            issuer.clone(),
            config.jwks_uri.clone(),
            http.clone(),
            config.jwks_fetch_timeout,
            config.jwks_max_bytes,
        );
        let store = Arc::new(KeyStore::remote(Arc::new(source), settings.clone()));
        // Keys load in the background: a provider that is down at startup
        // must not stop the service, and readiness reports the wait.
        background.spawn(|stop| Arc::clone(&store).run_refresher(stop));
        issuers.insert(issuer.clone(), store);
    }
    if let Some(dev) = dev {
        let jwks = json!({ "keys": [dev.key.jwk()] });
        let keys = parse_jwks(jwks.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
        issuers.insert(dev.issuer.clone(), Arc::new(KeyStore::fixed(keys)));
    }
    let policy = TokenPolicy {
        audiences,
        algorithms: config.algorithms.clone(),
        leeway: config.clock_leeway,
        identity_claim: config.identity_claim.clone(),
        scope_claims: config.scope_claims.clone(),
        max_token_bytes: config.max_token_bytes,
        require_typ: config.require_typ.clone(),
        cache_capacity: config.token_cache_size,
    };
    Ok(TokenVerifier::new(policy, issuers))
}
