//! Plain-HTTP endpoints beside the API on the same port: the web client
//! (embedded at build time, so `cargo build` needs no npm), liveness and
//! readiness probes, Prometheus metrics and the OpenAPI document.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::json;

use crate::{auth::Authenticator, headers::RETRY_AFTER_SECONDS, metrics::Metrics, storage::Store};

const INDEX_HTML: &[u8] = include_bytes!("../web/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../web/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../web/dist/app.css");

/// What the probes and `/metrics` read.
#[derive(Clone)]
pub struct Probes {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    /// Set when shutdown begins, so load balancers stop sending traffic
    /// while in-flight calls drain.
    pub draining: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
}

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    // The bundle is rebuilt with the binary; a short cache keeps a new
    // deployment visible within a minute.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        body,
    )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// 200 when the database answers and every issuer has usable signing keys.
async fn readyz(State(ready): State<Probes>) -> impl IntoResponse {
    let draining = ready.draining.load(Ordering::Acquire);
    let database = ready.store.ping().await.is_ok();
    let keys = ready
        .auth
        .verifier()
        .key_stores()
        .all(|(_, keys)| keys.has_usable_keys());
    let status = if !draining && database && keys {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "draining": draining,
        "database": if database { "ok" } else { "unreachable" },
        "signing_keys": if keys { "loaded" } else { "no keys yet" },
    });
    if status == StatusCode::OK {
        (status, Json(body)).into_response()
    } else {
        (
            status,
            [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
            Json(body),
        )
            .into_response()
    }
}

async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    let body = probes
        .metrics
        .render(&probes.auth, probes.store.as_ref())
        .await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// A known path asked with a method it does not serve: the JSON error
/// shape, as on the API's own paths (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method) -> axum::response::Response {
    crate::transcode::error_response(
        tonic::Code::Unimplemented,
        &format!("method {method} is not allowed on this path"),
        Some(StatusCode::METHOD_NOT_ALLOWED),
    )
}

/// The web client, the probes, the metrics and the OpenAPI document.
pub fn router(probes: Probes, openapi: serde_json::Value) -> axum::Router {
    let openapi = axum::body::Bytes::from(openapi.to_string());
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/index.html",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                    openapi.clone(),
                )
            }),
        )
        .with_state(probes)
}
