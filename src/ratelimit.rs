//! Optional per-caller rate limit, keyed by the token's subject.
//!
//! It sits inside the auth layer (it needs the caller) and outside the
//! handlers, so every protocol is limited alike. One noisy client cannot
//! starve the others; the global concurrency limit in `observe` protects
//! the server as a whole.

use std::{
    convert::Infallible,
    num::NonZeroU32,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::{auth::Principal, headers::RETRY_AFTER_SECONDS};

/// Above this many tracked callers, buckets that have refilled are dropped,
/// so memory stays bounded however many subjects call.
const MAX_TRACKED_CALLERS: usize = 100_000;

/// Limits each caller to a steady rate with bursts of the same size.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl RateLimitLayer {
    pub fn per_second(rate: NonZeroU32) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_second(rate))),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: Arc::clone(&self.limiter),
        }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
}

impl<S> Service<http::Request<Body>> for RateLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let caller = request.extensions().get::<Arc<Principal>>();
        if let Some(caller) = caller {
            if self.limiter.len() > MAX_TRACKED_CALLERS {
                self.limiter.retain_recent();
            }
            if self.limiter.check_key(&caller.subject).is_err() {
                let mut status = Status::resource_exhausted(
                    "rate limit exceeded for this caller; retry shortly",
                );
                status.metadata_mut().insert(
                    "retry-after",
                    tonic::metadata::MetadataValue::from_static(RETRY_AFTER_SECONDS),
                );
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        Box::pin(async move { inner.call(request).await })
    }
}
