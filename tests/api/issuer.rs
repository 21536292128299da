//! An in-process identity provider for tests: serves a JWKS on loopback,
//! mints tokens with any claims, rotates keys and can go down.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::{Value, json};
use timesheets::dev::{SigningKey, unix_now};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The audience every test token carries unless a test says otherwise.
pub const AUDIENCE: &str = "https://api.exampleco.com/timesheets";
/// The identity claim the original Auth0 Action adds.
pub const EMAIL_CLAIM: &str = "https://api.exampleco.com/email";

#[derive(Default)]
struct Shared {
    keys: Mutex<Vec<Arc<SigningKey>>>,
    /// Extra JWKS entries published as given (odd or unusable keys).
    extra: Mutex<Vec<Value>>,
    down: AtomicBool,
    /// Publish keys only at the URL the discovery document names.
    discovery_only: AtomicBool,
    base_url: Mutex<String>,
    fetches: AtomicUsize,
    discovery_requests: AtomicUsize,
}

pub struct TestIssuer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

async fn jwks(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    if shared.down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "down"})),
        );
    }
    let mut keys: Vec<Value> = shared
        .keys
        .lock()
        .expect("keys lock")
        .iter()
        .map(|k| k.jwk())
        .collect();
    keys.extend(shared.extra.lock().expect("extra lock").iter().cloned());
    (StatusCode::OK, Json(json!({ "keys": keys })))
}

async fn well_known_jwks(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    if shared.discovery_only.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    jwks(State(shared)).await.into_response()
}

async fn discovery(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    shared.discovery_requests.fetch_add(1, Ordering::SeqCst);
    if !shared.discovery_only.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = shared.base_url.lock().expect("lock").clone();
    Json(json!({"issuer": base, "jwks_uri": format!("{base}discovered/keys")})).into_response()
}

impl TestIssuer {
    /// Starts the issuer on an ephemeral loopback port with one fresh key.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        shared
            .keys
            .lock()
            .expect("keys lock")
            .push(Arc::new(SigningKey::generate().expect("keygen")));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind issuer");
        let addr = listener.local_addr().expect("issuer addr");
        *shared.base_url.lock().expect("lock") = format!("http://{addr}/");
        let router = axum::Router::new()
            .route("/.well-known/jwks.json", get(well_known_jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/discovered/keys", get(jwks))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Publishes keys only where its OpenID discovery document says.
    pub fn serve_keys_only_via_discovery(&self) {
        self.shared.discovery_only.store(true, Ordering::SeqCst);
    }

    /// The `iss` value, with the trailing slash Auth0 uses.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// How many times the JWKS was requested.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// How many times the OpenID discovery document was requested.
    pub fn discovery_requests(&self) -> usize {
        self.shared.discovery_requests.load(Ordering::SeqCst)
    }

    /// Makes the JWKS endpoint answer 503 (`true`) or recover (`false`).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Publishes a new key beside the old one and signs with it from now on.
    pub fn rotate(&self) {
        let key = Arc::new(SigningKey::generate().expect("keygen"));
        self.shared.keys.lock().expect("keys lock").push(key);
    }

    /// Publishes an arbitrary JWKS entry beside the signing keys.
    pub fn publish(&self, jwk: Value) {
        self.shared.extra.lock().expect("extra lock").push(jwk);
    }

    /// Signs raw header and claims bytes with the current key.
    pub fn sign_bytes(&self, header: &[u8], claims: &[u8]) -> String {
        self.current_key().sign_bytes(header, claims).expect("sign")
    }

    /// The current key's JWK (public half).
    pub fn jwk(&self) -> Value {
        self.current_key().jwk()
    }

    /// The current key's kid.
    pub fn kid(&self) -> String {
        self.current_key().kid().to_owned()
    }

    fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(
            self.shared
                .keys
                .lock()
                .expect("keys lock")
                .last()
                .expect("a key"),
        )
    }

    /// Standard, valid claims for `email` with `scopes`.
    pub fn claims(&self, email: &str, scopes: &[&str]) -> Value {
        let now = unix_now();
        json!({
            "iss": self.url(),
            "aud": AUDIENCE,
            "sub": format!("auth0|{email}"),
            "iat": now,
            "exp": now + 3600,
            "scope": scopes.join(" "),
            EMAIL_CLAIM: email,
        })
    }

    /// Signs any claims with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        self.current_key().sign(claims).expect("sign")
    }

    /// Signs any header and claims with the current key.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        self.current_key().sign_raw(header, claims).expect("sign")
    }

    /// A valid token for `email` with `scopes`.
    pub fn token(&self, email: &str, scopes: &[&str]) -> String {
        self.sign(&self.claims(email, scopes))
    }

    /// Stops serving and waits for the task to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("issuer stops within 5 s")
                .expect("issuer task did not panic");
        }
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        // A test that panicked never called stop(); don't leave the task behind.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
