//! Assembles the server: one listener, every protocol, per-service layers.
//!
//! [`App::build`] binds the listener first (so tests can use port 0 and read
//! the real address), opens storage, loads keys and builds the router;
//! [`App::run_until`] serves until the given shutdown future resolves.
//!
//! Routing: the TimesheetService sits behind the auth layer; health and
//! reflection stay open, as in tonic's examples. In `--dev` mode the same
//! port also serves the dev issuer's JWKS.
//!
//! - `verifier`: the token verifier and key stores from the configuration.
//! - `cors`: the CORS layer for browsers on other origins.
//! - `grpc_only`: the gRPC routes' 415 for anything but gRPC and gRPC-Web.
//! - `background`: the background tasks (key refreshers) and their shutdown.

mod background;
mod cors;
mod grpc_only;
mod verifier;

pub use background::Background;
use grpc_only::GrpcOnly;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use http::HeaderName;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tonic_web::GrpcWebLayer;
use tower::{Layer, ServiceBuilder, ServiceExt as _};

use crate::{
    auth::{AuthLayer, Authenticator, ScopeTable, keys::well_known, scopes::REQUIRED_SCOPE_OPTION},
    config::{DEV_AUDIENCE, ServeConfig},
    dev::{self, DevIssuer, SigningKey},
    metrics::Metrics,
    observe::{Admission, CallMetricsLayer, GraceCut, ObserveLayer},
    pagination::PageTokens,
    proto::{
        FILE_DESCRIPTOR_SET, SERVICE_NAME, descriptor_pool,
        timesheets::v1::timesheet_service_server::TimesheetServiceServer,
    },
    ratelimit::RateLimitLayer,
    routes,
    serve::{self, Transport},
    service::TimesheetApi,
    storage::{self, Store},
    tls,
    transcode::{GrpcService, JsonNames, OpenApiInfo, TranscodeOptions, Transcoder},
};

use self::{cors::cors, verifier::build_verifier};

/// How long shutdown waits, after the connections, for background tasks
/// (which stop at once when told to, unless in the middle of a JWKS fetch)
/// and for the database to commit what it has queued and close, both at
/// once. This and [`DRAIN_MARGIN`] are all the process takes beyond the
/// shutdown delay and grace period, so the default 25 s grace ends the
/// process within Kubernetes' default 30 s kill timeout.
const BACKGROUND_GRACE: Duration = Duration::from_secs(2);

/// Name of the page-token MAC key in `server_secrets`.
const PAGE_TOKEN_SECRET: &str = "page_token_hmac_v1";

/// After the grace period, the remaining calls and streams are answered
/// UNAVAILABLE; this is how long their connections then get to deliver
/// that to clients slow to read it.
const DRAIN_MARGIN: Duration = Duration::from_secs(2);

/// The shutdown timings, from the configuration.
struct Shutdown {
    delay: Duration,
    grace: Duration,
}

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    store: Arc<dyn Store>,
    health: HealthReporter,
    draining: Arc<AtomicBool>,
    grace_over: watch::Sender<bool>,
    shutdown: Shutdown,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    dev_banner: Option<String>,
    background: Background,
}

impl App {
    /// Binds `config.listen`, opens the database and prepares every service.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        // A bad certificate is a startup error, not a failure per connection.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };

        let dev = match config.dev {
            true => Some(Arc::new(DevIssuer {
                issuer: dev::issuer_for(local_addr),
                audience: config
                    .audiences
                    .first()
                    .map_or(DEV_AUDIENCE, String::as_str)
                    .to_owned(),
                identity_claim: config.identity_claim.clone(),
                key_file: config.dev_key_file.clone(),
                key: SigningKey::load_or_create(&config.dev_key_file).with_context(|| {
                    format!("loading the dev key {}", config.dev_key_file.display())
                })?,
            })),
            false => None,
        };
        let mut background = Background::new();
        let verifier = build_verifier(&config, dev.as_deref(), &mut background)?;
        let scopes = ScopeTable::from_descriptors(descriptor_pool(), &[SERVICE_NAME])?;
        let auth = Authenticator::new(verifier, scopes);

        let options = storage::StoreOptions {
            max_connections: config.database_pool_size,
            acquire_timeout: config.database_acquire_timeout,
            row_cache_bytes: config.row_cache_bytes,
        };
        let store = storage::connect(&config.database_url, options).await?;
        let mut fresh = [0u8; 32];
        SystemRandom::new()
            .fill(&mut fresh)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        let secret = store
            .shared_secret(PAGE_TOKEN_SECRET, &fresh)
            .await
            .context("loading the page-token key")?;
        let api = TimesheetApi::new(
            Arc::clone(&store),
            PageTokens::new(&secret),
            config.max_message_bytes,
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<TimesheetServiceServer<TimesheetApi>>()
            .await;
        let draining = Arc::new(AtomicBool::new(false));
        let metrics = Metrics::new();
        let open_connections = metrics.connections_open();
        let probes = routes::Probes {
            store: Arc::clone(&store),
            auth: Arc::clone(&auth),
            draining: Arc::clone(&draining),
            metrics: Arc::clone(&metrics),
        };

        // Flips when the shutdown grace period is over; in-flight calls end then.
        let (grace_over, grace_watch) = watch::channel(false);
        // One stack for the service: every protocol enters through it.
        let timesheets = GrpcService::new(
            ServiceBuilder::new()
                .layer(CallMetricsLayer::new(
                    Arc::clone(&metrics),
                    grace_watch.clone(),
                ))
                .layer(AuthLayer::new(auth))
                .option_layer(config.rate_limit_per_user.map(RateLimitLayer::per_second))
                .service(
                    TimesheetServiceServer::new(api)
                        .max_decoding_message_size(config.max_message_bytes)
                        .max_encoding_message_size(config.max_message_bytes),
                ),
        );
        let transcoder = Transcoder::new(
            descriptor_pool(),
            &[SERVICE_NAME],
            transcode_options(&config)?,
        )?;
        // The document describes exactly what the transcoder serves, so it
        // is rendered from it once, before the routes take it over.
        let openapi = transcoder.openapi(&OpenApiInfo {
            title: "ExampleCo Timesheets API".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            scope_option: Some(REQUIRED_SCOPE_OPTION.to_owned()),
            token_url: token_url(&config, dev.as_deref()),
        });
        // Each gRPC service answers gRPC-Web too, through tonic-web. These
        // three stream replies, which the grace period's end must cut too.
        let health_service = GrpcOnly::new(GraceCut::new(health_service, grace_watch.clone()));
        let reflection_v1 = GrpcOnly::new(GraceCut::new(
            reflection().build_v1().context("building reflection v1")?,
            grace_watch.clone(),
        ));
        // grpcurl still speaks v1alpha only.
        let reflection_v1alpha = GrpcOnly::new(GraceCut::new(
            reflection()
                .build_v1alpha()
                .context("building reflection v1alpha")?,
            grace_watch.clone(),
        ));
        let mut router = Routes::new(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .into_axum_router()
            .route_service(
                &format!("/{SERVICE_NAME}/{{*method}}"),
                GrpcOnly::split(
                    // In tonic's body, as tonic's own routes hand it over.
                    timesheets
                        .clone()
                        .map_request(|call: http::Request<axum::body::Body>| {
                            call.map(tonic::body::Body::new)
                        }),
                    GrpcWebLayer::new().layer(timesheets.clone()),
                ),
            )
            .merge(routes::router(probes, openapi));
        let dev_banner = match &dev {
            Some(dev) => {
                router = router.merge(Arc::clone(dev).routes());
                Some(dev.banner()?)
            }
            None => None,
        };
        let admission = Admission {
            metrics,
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            grace_over: grace_watch,
            http_timeout: config.request_timeout,
            body_timeout: config.request_body_timeout,
        };
        // Everything else is HTTP/JSON, transcoded into the same stack.
        let router = router
            .method_not_allowed_fallback(routes::method_not_allowed)
            .fallback_service(transcoder.into_router(timesheets))
            .layer(ObserveLayer::new(admission))
            .layer(cors(&config.cors_origins)?);
        let shutdown = Shutdown {
            delay: config.shutdown_delay,
            grace: config.shutdown_grace,
        };
        let transport = Transport {
            max_header_bytes: config.max_header_bytes,
            http1_header_timeout: config.http1_header_timeout,
            http2_max_concurrent_streams: config.http2_max_concurrent_streams,
            max_connections: config.max_connections as usize,
            idle_timeout: config.connection_idle_timeout,
            open_connections,
            drain_timeout: config.shutdown_grace + DRAIN_MARGIN,
        };
        Ok(Self {
            listener,
            local_addr,
            router,
            store,
            health,
            draining,
            grace_over,
            shutdown,
            transport,
            tls,
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

    /// Serves every protocol until `shutdown` resolves, then drains: health
    /// turns NOT_SERVING and readiness 503 at once, the listener closes,
    /// in-flight calls finish (those still running after the grace period
    /// get UNAVAILABLE), background tasks stop, the database closes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr, "serving gRPC, gRPC-Web and HTTP/JSON");
        let health = self.health.clone();
        let draining = Arc::clone(&self.draining);
        let grace = self.shutdown.grace;
        let delay = self.shutdown.delay;
        let grace_over = self.grace_over;
        let (timer_tx, timer_rx) = tokio::sync::oneshot::channel::<JoinHandle<()>>();
        let shutdown = async move {
            shutdown.await;
            draining.store(true, Ordering::Release);
            health
                .set_not_serving::<TimesheetServiceServer<TimesheetApi>>()
                .await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            if !delay.is_zero() {
                tracing::info!(
                    delay_s = delay.as_secs_f64(),
                    "not ready; still accepting while load balancers notice"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!(grace_s = grace.as_secs_f64(), "draining in-flight calls");
            let timer = tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                tracing::warn!("shutdown grace period over; cancelling the remaining calls");
                let _ = grace_over.send(true);
            });
            let _ = timer_tx.send(timer);
        };
        serve::serve(
            self.listener,
            self.tls,
            self.router,
            &self.transport,
            shutdown,
        )
        .await;
        // The grace timer belongs to this shutdown and must not outlive it.
        if let Ok(timer) = timer_rx.await {
            timer.abort();
        }
        // Every call has its answer by now, so a database that does not
        // close in time holds no acknowledged write: SQLite rolls back an
        // unfinished commit on the next start. The two share the time.
        let store = self.store;
        let close = async move {
            if tokio::time::timeout(BACKGROUND_GRACE, store.close())
                .await
                .is_err()
            {
                tracing::warn!("the database did not close in time; exiting without it");
            }
        };
        tokio::join!(self.background.shutdown(BACKGROUND_GRACE), close);
        Ok(())
    }
}

/// Where the OpenAPI document says clients get tokens: as configured, else
/// Auth0's token endpoint of the first issuer, which the dev issuer serves
/// too.
fn token_url(config: &ServeConfig, dev: Option<&DevIssuer>) -> String {
    if let Some(url) = &config.token_url {
        return url.clone();
    }
    let issuer = config
        .issuers
        .first()
        .map(String::as_str)
        .or(dev.map(|d| d.issuer.as_str()));
    well_known::url(
        issuer.unwrap_or("https://YOUR_TENANT.auth0.com/"),
        well_known::TOKEN,
    )
}

/// Reflection over our contract and the health service; left open, so
/// tools can discover the API without a token.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

fn transcode_options(config: &ServeConfig) -> anyhow::Result<TranscodeOptions> {
    let forward_headers = config
        .forward_headers
        .iter()
        .map(|h| {
            HeaderName::try_from(h.as_str()).with_context(|| format!("--forward-header {h:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(TranscodeOptions {
        json_names: match config.json_names {
            crate::config::JsonNames::Proto => JsonNames::Proto,
            crate::config::JsonNames::Camel => JsonNames::Camel,
        },
        ignore_unknown_fields: config.json_ignore_unknown_fields,
        max_body_bytes: config.http_max_body_bytes,
        max_json_depth: config.json_max_depth,
        forward_headers,
    })
}
