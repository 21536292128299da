//! The gRPC routes take gRPC and gRPC-Web only.
//!
//! Anything else would reach tonic, which reads a JSON body as a frame
//! ("invalid compression flag: 123", INTERNAL) or, over HTTP/1.1, tonic-web's
//! bare 400; the gRPC HTTP/2 protocol asks for 415. Native gRPC over
//! HTTP/1.1, which cannot carry its trailers, would get that bare 400 too: it
//! gets a 400 that names what works instead. A wrapper in the route's own
//! service, not a router layer: a layer per route costs another boxed service
//! clone and future on every call (3k instructions, measured), this one a
//! header check.
//!
//! tonic-web knows its four content types by their exact spelling, while a
//! media type may come in any case and with parameters (RFC 9110 §8.3.1):
//! such a gRPC-Web request is handed on under the spelling tonic-web knows,
//! or its base64 body would reach tonic undecoded.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::response::Response;
use futures::future::{Either, MapOk, Ready, TryFutureExt as _, ready};
use http::{HeaderValue, header};
use tonic::server::NamedService;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer, Service, ServiceExt as _, util::Oneshot};

use crate::{headers::Protocol, transcode};

/// Wraps one gRPC service: native gRPC calls go to `native`, gRPC-Web
/// calls to `web`, the same service behind tonic-web.
///
/// The router clones a route's service for every call, so the two are
/// shared behind one `Arc` and only the one a call takes is cloned: a
/// native call pays neither for the gRPC-Web copy nor for tonic-web's
/// pass-through, which boxes the request and reply bodies once more (1k
/// instructions a health check).
pub struct GrpcOnly<N, W> {
    services: Arc<(N, W)>,
}

impl<N, W> Clone for GrpcOnly<N, W> {
    fn clone(&self) -> Self {
        Self {
            services: Arc::clone(&self.services),
        }
    }
}

impl<S: Clone> GrpcOnly<S, GrpcWebService<S>> {
    /// `service` for native gRPC, and behind tonic-web for gRPC-Web.
    pub fn new(service: S) -> Self {
        let web = GrpcWebLayer::new().layer(service.clone());
        Self::split(service, web)
    }
}

impl<N, W> GrpcOnly<N, W> {
    /// `native` for native gRPC and `web` for gRPC-Web, when the two are
    /// wrapped differently around one service.
    pub fn split(native: N, web: W) -> Self {
        Self {
            services: Arc::new((native, web)),
        }
    }
}

impl<N: NamedService, W> NamedService for GrpcOnly<N, W> {
    const NAME: &'static str = N::NAME;
}

/// A reply of either service, as axum's.
type Answer<F, B> = MapOk<F, fn(http::Response<B>) -> Response>;

impl<N, W, ReqBody, NBody, WBody> Service<http::Request<ReqBody>> for GrpcOnly<N, W>
where
    N: Service<http::Request<ReqBody>, Response = http::Response<NBody>> + Clone,
    W: Service<http::Request<ReqBody>, Response = http::Response<WBody>, Error = N::Error> + Clone,
    NBody: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    NBody::Error: Into<axum::BoxError>,
    WBody: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    WBody::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = N::Error;
    #[allow(clippy::type_complexity)]
    type Future = Either<
        Ready<Result<Response, N::Error>>,
        Either<
            Answer<Oneshot<N, http::Request<ReqBody>>, NBody>,
            Answer<Oneshot<W, http::Request<ReqBody>>, WBody>,
        >,
    >;

    /// Always ready: each call is made on a clone of the service it takes,
    /// which is polled ready then.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let protocol = Protocol::of_request(&request);
        if protocol == Protocol::GrpcWeb
            && let Some(known) = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(tonic_web_spelling)
        {
            request.headers_mut().insert(header::CONTENT_TYPE, known);
        }
        if protocol == Protocol::Json {
            return Either::Left(ready(Ok(transcode::error_response(
                tonic::Code::InvalidArgument,
                "this path serves gRPC and gRPC-Web (content-type application/grpc or \
                 application/grpc-web); HTTP/JSON is served at the paths in /openapi.json",
                Some(http::StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ))));
        }
        if protocol == Protocol::Grpc && request.version() < http::Version::HTTP_2 {
            return Either::Left(ready(Ok(transcode::error_response(
                tonic::Code::InvalidArgument,
                "gRPC needs HTTP/2 (h2c with prior knowledge, or h2 over TLS); over HTTP/1.1 \
                 this path serves gRPC-Web (content-type application/grpc-web), and \
                 HTTP/JSON is served at the paths in /openapi.json",
                Some(http::StatusCode::BAD_REQUEST),
            ))));
        }
        let (native, web) = &*self.services;
        Either::Right(match protocol {
            Protocol::GrpcWeb => {
                let into_axum: fn(http::Response<WBody>) -> Response =
                    |response| response.map(axum::body::Body::new);
                Either::Right(web.clone().oneshot(request).map_ok(into_axum))
            }
            _ => {
                let into_axum: fn(http::Response<NBody>) -> Response =
                    |response| response.map(axum::body::Body::new);
                Either::Left(native.clone().oneshot(request).map_ok(into_axum))
            }
        })
    }
}

/// The gRPC-Web content types tonic-web recognises, as it spells them.
const TONIC_WEB_CONTENT_TYPES: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
];

/// tonic-web's spelling of `content_type`, when it names one of its types
/// in another case or with parameters; `None` when it is already spelled
/// so, or names none of them.
fn tonic_web_spelling(content_type: &HeaderValue) -> Option<HeaderValue> {
    let essence = content_type.to_str().ok()?.split(';').next()?.trim();
    TONIC_WEB_CONTENT_TYPES
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(essence))
        .filter(|known| content_type != known)
        .map(HeaderValue::from_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_web_content_types_are_respelled_only_when_tonic_web_would_miss_them() {
        let respelled = |value: &'static str| {
            tonic_web_spelling(&HeaderValue::from_static(value))
                .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
        };
        assert_eq!(respelled("application/grpc-web"), None);
        assert_eq!(respelled("application/grpc-web-text+proto"), None);
        assert_eq!(
            respelled("APPLICATION/GRPC-WEB-TEXT").as_deref(),
            Some("application/grpc-web-text")
        );
        assert_eq!(
            respelled("application/grpc-web+proto; charset=utf-8").as_deref(),
            Some("application/grpc-web+proto")
        );
        // Not one of tonic-web's: left for it to refuse.
        assert_eq!(respelled("application/grpc-web+json"), None);
    }
}
