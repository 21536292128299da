//! The end of the shutdown grace period for response streams.
//!
//! The outer layer cuts a call off at the end of the grace period only
//! until its response head is out. A server stream (health `Watch`,
//! reflection) has sent its head long before, and would hold its
//! connection, and so the whole shutdown, until the drain timeout closed it
//! without a status. [`GraceCut`] ends such a stream when the grace period
//! ends, with UNAVAILABLE in its trailers, which tells the client to retry
//! on another replica; tonic-web carries those trailers to gRPC-Web
//! clients as it does any others.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use tonic::{body::Body, server::NamedService};
use tower::Service;

use crate::observe::{SHUTTING_DOWN, wait_for_grace_over};

/// Wraps a gRPC service whose replies may stream: each reply's body ends
/// with UNAVAILABLE once the shutdown grace period is over.
#[derive(Clone)]
pub struct GraceCut<S> {
    inner: S,
    grace_over: tokio::sync::watch::Receiver<bool>,
}

impl<S> GraceCut<S> {
    /// `grace_over` flips when the grace period ends, as in [`super::Admission`].
    pub fn new(inner: S, grace_over: tokio::sync::watch::Receiver<bool>) -> Self {
        Self { inner, grace_over }
    }
}

impl<S: NamedService> NamedService for GraceCut<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<Request<B>> for GraceCut<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    // tonic's generated servers box their futures.
    S::Future: Unpin,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CutReply<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        CutReply {
            inner: self.inner.call(request),
            grace_over: Some(self.grace_over.clone()),
        }
    }
}

/// The reply of a [`GraceCut`] service, its body wrapped.
pub struct CutReply<F> {
    inner: F,
    grace_over: Option<tokio::sync::watch::Receiver<bool>>,
}

impl<F, E> Future for CutReply<F>
where
    F: Future<Output = Result<Response<Body>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(Pin::new(&mut self.inner).poll(cx))?;
        let grace_over = self.grace_over.take();
        Poll::Ready(Ok(response.map(|body| match grace_over {
            Some(grace_over) if !body.is_end_stream() => Body::new(CutBody {
                inner: body,
                grace_over: Some(grace_over),
                waiting: None,
            }),
            _ => body,
        })))
    }
}

/// A reply body that gives way to UNAVAILABLE trailers when the grace
/// period ends.
struct CutBody {
    inner: Body,
    /// Taken once the body has ended, either way.
    grace_over: Option<tokio::sync::watch::Receiver<bool>>,
    /// The wait for the end of the grace period, made only once the body
    /// has to wait for its next frame: a reply that is ready at once (every
    /// unary call's) pays for no future.
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl CutBody {
    fn cut(&mut self) -> Poll<Option<Result<Frame<axum::body::Bytes>, tonic::Status>>> {
        self.grace_over = None;
        self.waiting = None;
        let mut trailers = HeaderMap::new();
        let status = tonic::Status::unavailable(SHUTTING_DOWN);
        // Only fails for a message that is not a valid header value.
        let _ = status.add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl http_body::Body for CutBody {
    type Data = axum::body::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let Some(grace_over) = &this.grace_over else {
            return Poll::Ready(None);
        };
        let over = *grace_over.borrow();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) if frame.as_ref().is_none_or(is_trailers) => {
                // Ended on its own, with its own status even now.
                this.grace_over = None;
                this.waiting = None;
                return Poll::Ready(frame);
            }
            // The rest of a reply still streaming is not waited for.
            _ if over => return this.cut(),
            Poll::Ready(frame) => return Poll::Ready(frame),
            Poll::Pending => {}
        }
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(wait_for_grace_over(grace_over.clone())));
        ready!(waiting.as_mut().poll(cx));
        this.cut()
    }

    fn is_end_stream(&self) -> bool {
        self.grace_over.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.grace_over.is_none() {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

fn is_trailers(frame: &Result<Frame<axum::body::Bytes>, tonic::Status>) -> bool {
    frame.as_ref().is_ok_and(Frame::is_trailers)
}
