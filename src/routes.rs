//! Plain-HTTP endpoints beside the API on the same port: the web client
//! (embedded at build time, so `cargo build` needs no npm), liveness and
//! readiness probes.

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

use crate::{auth::Authenticator, storage::Store};

const INDEX_HTML: &[u8] = include_bytes!("../web/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../web/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../web/dist/app.css");

/// What readiness depends on.
#[derive(Clone)]
pub struct Readiness {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    /// Set when shutdown begins, so load balancers stop sending traffic
    /// while in-flight calls drain.
    pub draining: Arc<AtomicBool>,
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
async fn readyz(State(ready): State<Readiness>) -> impl IntoResponse {
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
        (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response()
    }
}

/// The web client and the probes.
pub fn router(ready: Readiness) -> axum::Router {
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
        .with_state(ready)
}
