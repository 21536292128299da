//! The tower layer that authenticates every TimesheetService call.
//!
//! A tower layer rather than a tonic interceptor, because it must see the
//! method path (to look up the scope) and await (a key refetch). gRPC,
//! gRPC-Web and transcoded HTTP/JSON all reach the service through it.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::body::Body;
use tower::{Layer, Service};

use super::Authenticator;
use crate::observe;

/// Wraps a gRPC service so that no call reaches a handler of it
/// unauthenticated (a path naming no method goes on to the service's own
/// UNIMPLEMENTED answer).
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S> Service<http::Request<Body>> for AuthService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            match auth
                .authorize(request.uri().path(), request.headers())
                .await
            {
                Ok(None) => inner.call(request).await,
                Ok(Some(principal)) => {
                    let caller = Arc::clone(&principal);
                    request.extensions_mut().insert(principal);
                    let response = inner.call(request).await;
                    if let Ok(response) = &response
                        && observe::logged_in_full(observe::reply_code(response))
                    {
                        tracing::Span::current().record("subject", caller.tag.as_str());
                    }
                    response
                }
                Err(err) => {
                    tracing::debug!(path = request.uri().path(), reason = %err, "call refused");
                    let mut response: http::Response<Body> = err.to_status().into_http();
                    // Metrics count refusals by reason from here.
                    response.extensions_mut().insert(err);
                    Ok(response)
                }
            }
        })
    }
}
