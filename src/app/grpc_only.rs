//! The gRPC routes take gRPC and gRPC-Web only.
//!
//! Anything else would reach tonic, which reads a JSON body as a frame
//! ("invalid compression flag: 123", INTERNAL) or, over HTTP/1.1, tonic-web's
//! bare 400; the gRPC HTTP/2 protocol asks for 415. A wrapper in the route's
//! own service, not a router layer: a layer per route costs another boxed
//! service clone and future on every call (3k instructions, measured), this
//! one a header check.

use std::task::{Context, Poll};

use axum::response::Response;
use futures::future::{Either, MapOk, Ready, TryFutureExt as _, ready};
use tonic::server::NamedService;
use tower::Service;

use crate::{headers::Protocol, transcode};

/// Wraps one gRPC service (after tonic-web, so gRPC-Web passes too).
#[derive(Clone)]
pub struct GrpcOnly<S>(pub S);

impl<S: NamedService> NamedService for GrpcOnly<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcOnly<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    #[allow(clippy::type_complexity)]
    type Future = Either<
        Ready<Result<Response, S::Error>>,
        MapOk<S::Future, fn(http::Response<ResBody>) -> Response>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if Protocol::of_request(&request) == Protocol::Json {
            return Either::Left(ready(Ok(transcode::error_response(
                tonic::Code::InvalidArgument,
                "this path serves gRPC and gRPC-Web (content-type application/grpc or \
                 application/grpc-web); HTTP/JSON is served at the paths in /openapi.json",
                Some(http::StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ))));
        }
        let into_axum: fn(http::Response<ResBody>) -> Response =
            |response| response.map(axum::body::Body::new);
        Either::Right(self.0.call(request).map_ok(into_axum))
    }
}
