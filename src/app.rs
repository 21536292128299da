//! Assembles the server: one listener, every protocol, per-service layers.
//!
//! [`App::build`] binds the listener first (so tests can use port 0 and read
//! the real address), opens storage, loads keys and builds the router;
//! [`App::run_until`] serves until the given shutdown future resolves.
//!
//! Routing: the TimesheetService sits behind the auth layer; health and
//! reflection stay open, as in tonic's examples. In `--dev` mode the same
//! port also serves the dev issuer's JWKS.

use std::{collections::HashMap, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::{Json, routing::get};
use serde_json::json;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tower::ServiceBuilder;

use crate::{
    auth::{
        AuthLayer, Authenticator, ScopeTable, TokenPolicy, TokenVerifier,
        keys::{self, HttpJwks, KeySettings, KeyStore, parse_jwks},
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

/// How long shutdown waits for background tasks; they only sleep or fetch
/// with a 2 s timeout, so this is generous.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// Name of the page-token MAC key in `server_secrets`.
const PAGE_TOKEN_SECRET: &str = "page_token_hmac_v1";

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    store: Arc<dyn Store>,
    dev_banner: Option<String>,
    background: Background,
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
        let mut background = Background::new();
        let verifier = build_verifier(&config, dev_issuer.as_ref(), &mut background)?;
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
            background,
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
        self.background.shutdown(BACKGROUND_GRACE).await;
        self.store.close().await;
        result
    }
}

fn build_verifier(
    config: &ServeConfig,
    dev: Option<&DevIssuer>,
    background: &mut Background,
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

/// Owns the background tasks (key refreshers): tells them to stop and
/// waits for them on shutdown, and aborts them if the app is dropped.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(task(self.stop.subscribe())));
    }

    /// Signals every task and waits for them, at most `grace`.
    async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        if tokio::time::timeout(grace, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
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
