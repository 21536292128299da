//! Assembles the server: one listener, every protocol, per-service layers.
//!
//! [`App::build`] binds the listener first (so tests can use port 0 and read
//! the real address), opens storage, loads keys and builds the router;
//! [`App::run_until`] serves until the given shutdown future resolves.
//!
//! Routing: the TimesheetService sits behind the auth layer; health and
//! reflection stay open, as in tonic's examples. In `--dev` mode the same
//! port also serves the dev issuer's JWKS.

use std::{collections::HashMap, future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::{Json, routing::get};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tower::ServiceBuilder;

use crate::{
    auth::{
        AuthLayer, Authenticator, ScopeTable, TokenPolicy, TokenVerifier,
        keys::{self, FetchSettings, KeyStore, parse_jwks},
    },
    config::{DEV_AUDIENCE, ServeConfig},
    dev::{self, SigningKey},
    pagination::PageTokens,
    proto::{
        FILE_DESCRIPTOR_SET, SERVICE_NAME, descriptor_pool,
        timesheets::v1::timesheet_service_server::TimesheetServiceServer,
    },
    service::TimesheetApi,
    storage::{self, Store},
};

/// Tokens longer than this are refused unparsed; real Auth0 access tokens
/// are around 1 KiB even with many permissions.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Name of the page-token MAC key in `server_secrets`.
const PAGE_TOKEN_SECRET: &str = "page_token_hmac_v1";

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    store: Arc<dyn Store>,
    dev_banner: Option<String>,
}

/// What the `--dev` issuer contributes: its issuer URL, keys and routes.
struct DevIssuer {
    issuer: String,
    key: SigningKey,
}

impl App {
    /// Binds `config.listen`, opens the database and prepares every service.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;

        let dev_issuer = if config.dev {
            let key = SigningKey::load_or_create(&config.dev_key_file).with_context(|| {
                format!("loading the dev key {}", config.dev_key_file.display())
            })?;
            Some(DevIssuer {
                issuer: dev::issuer_for(local_addr),
                key,
            })
        } else {
            None
        };
        let verifier = build_verifier(&config, dev_issuer.as_ref()).await?;
        let scopes = ScopeTable::from_descriptors(descriptor_pool(), &[SERVICE_NAME])?;
        let auth = Authenticator::new(verifier, scopes);

        let store = storage::connect(&config.database_url).await?;
        let mut fresh = [0u8; 32];
        SystemRandom::new()
            .fill(&mut fresh)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        let secret = store
            .shared_secret(PAGE_TOKEN_SECRET, &fresh)
            .await
            .context("loading the page-token key")?;
        let api = TimesheetApi::new(Arc::clone(&store), PageTokens::new(&secret));

        let mut router = grpc_router(api, auth).await?;
        let dev_banner = match dev_issuer {
            Some(dev) => {
                let audience = config
                    .audiences
                    .first()
                    .map_or(DEV_AUDIENCE, String::as_str);
                let banner = dev::banner(
                    &dev.key,
                    &dev.issuer,
                    audience,
                    &config.identity_claim,
                    dev::issuer_for(local_addr)
                        .trim_start_matches("http://")
                        .trim_end_matches('/'),
                )?;
                router = router.merge(dev_routes(dev));
                Some(banner)
            }
            None => None,
        };
        Ok(Self {
            listener,
            local_addr,
            router,
            store,
            dev_banner,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// In `--dev` mode, the ready-to-use tokens and commands to print.
    pub fn dev_banner(&self) -> Option<&str> {
        self.dev_banner.as_deref()
    }

    /// Serves every protocol until `shutdown` resolves, then drains and
    /// closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr, "serving gRPC, gRPC-Web and HTTP/JSON");
        let result = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(self.router))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await
            .context("serving");
        self.store.close().await;
        result
    }
}

async fn build_verifier(
    config: &ServeConfig,
    dev: Option<&DevIssuer>,
) -> anyhow::Result<TokenVerifier> {
    let mut audiences = config.audiences.clone();
    if dev.is_some() && audiences.is_empty() {
        audiences.push(DEV_AUDIENCE.to_owned());
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
    let mut issuers = HashMap::new();
    for issuer in &config.issuers {
        keys::check_transport(issuer).context("--issuer")?;
        let jwks_uri = match &config.jwks_uri {
            Some(uri) => uri.clone(),
            None => format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
        };
        keys::check_transport(&jwks_uri).context("--jwks-uri")?;
        let store = Arc::new(KeyStore::remote(
            jwks_uri,
            http.clone(),
            FetchSettings::default(),
        ));
        // A provider that is down at startup must not stop the service: the
        // first request that needs a key fetches again.
        if let Err(err) = store.refresh().await {
            tracing::warn!(%issuer, error = %format!("{err:#}"), "starting without signing keys");
        }
        issuers.insert(issuer.clone(), store);
    }
    if let Some(dev) = dev {
        let jwks = json!({ "keys": [dev.key.jwk()] });
        let keys = parse_jwks(jwks.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
        issuers.insert(dev.issuer.clone(), Arc::new(KeyStore::fixed(keys)));
    }
    let policy = TokenPolicy {
        audiences,
        algorithms: vec![jsonwebtoken::Algorithm::RS256],
        leeway: config.clock_leeway,
        identity_claim: config.identity_claim.clone(),
        scope_claim: "scope".to_owned(),
        max_token_bytes: MAX_TOKEN_BYTES,
    };
    Ok(TokenVerifier::new(policy, issuers))
}

/// gRPC services: TimesheetService behind auth; health and reflection open.
async fn grpc_router(api: TimesheetApi, auth: Arc<Authenticator>) -> anyhow::Result<axum::Router> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<TimesheetServiceServer<TimesheetApi>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    // grpcurl still speaks v1alpha only.
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection v1alpha")?;
    let timesheets = ServiceBuilder::new()
        .map_request(|request: http::Request<axum::body::Body>| request.map(tonic::body::Body::new))
        .layer(AuthLayer::new(auth))
        .service(TimesheetServiceServer::new(api));
    let router = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .route_service(&format!("/{SERVICE_NAME}/{{*method}}"), timesheets);
    Ok(router)
}

/// The dev issuer's discovery document and JWKS, so other tools can verify
/// dev tokens the way they would a real tenant's.
fn dev_routes(dev: DevIssuer) -> axum::Router {
    let jwks = json!({ "keys": [dev.key.jwk()] });
    let discovery = json!({
        "issuer": dev.issuer,
        "jwks_uri": format!("{}.well-known/jwks.json", dev.issuer),
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    axum::Router::new()
        .route(
            "/.well-known/jwks.json",
            get(move || async move { Json(jwks) }),
        )
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
}
