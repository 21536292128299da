//! The HTTP side: one handler that routes a request, reads its body within
//! the limit, sends the request message in-process as a real gRPC request
//! through the given service (so the same auth layer and limits apply), and
//! maps the reply back.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    response::Response,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header, request::Parts};
use prost_reflect::{DeserializeOptions, SerializeOptions};
use tower::ServiceExt as _;

use crate::headers::{GRPC_TIMEOUT, Protocol, X_REQUEST_ID};

use super::{
    GrpcService,
    error::{ErrorRenderer, TranscodeError},
    json, request, response,
    routes::{Lookup, RouteTable},
    rules::Binding,
};

/// Headers always carried over to the gRPC request: the credentials the
/// auth layer checks, the caller's correlation id, and the deadline.
pub(crate) static ALWAYS_FORWARDED: [HeaderName; 3] =
    [header::AUTHORIZATION, X_REQUEST_ID, GRPC_TIMEOUT];

/// Everything the handler needs, built once by `Transcoder::new`.
pub(crate) struct Shared {
    pub routes: RouteTable,
    pub grpc: GrpcService,
    pub errors: ErrorRenderer,
    pub deserialize: DeserializeOptions,
    pub serialize: SerializeOptions,
    pub proto_names: bool,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub forward_headers: Vec<HeaderName>,
}

/// The router's fallback: every binding goes through here.
pub(crate) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let protocol = Protocol::of(request.headers());
    if protocol != Protocol::Json {
        // A gRPC call for a service nobody serves lands here when the
        // transcoder is the fallback; it deserves a gRPC answer, not JSON.
        return protocol.trailers_only(tonic::Status::unimplemented("no such gRPC method"));
    }
    match shared.transcode(request).await {
        Ok(response) => response,
        Err(error) => shared.errors.render(error),
    }
}

impl Shared {
    async fn transcode(&self, request: Request) -> Result<Response, TranscodeError> {
        let (parts, body) = request.into_parts();
        let (binding, captures) = match self.routes.lookup(&parts.method, parts.uri.path()) {
            Lookup::Found { binding, captures } => (binding, captures),
            Lookup::WrongMethod { allow } => {
                return Err(TranscodeError::MethodNotAllowed {
                    method: parts.method,
                    allow,
                });
            }
            Lookup::NotFound => return Err(TranscodeError::NoRoute),
        };
        let body = self.read_body(&parts.headers, body).await?;
        json::check_depth(&body, self.max_json_depth)?;
        let encoded = request::encode(
            binding,
            &captures,
            parts.uri.query(),
            &body,
            &parts.headers,
            &self.deserialize,
        )?;
        let uri = parts.uri.clone();
        let call = self.grpc_request(binding, &encoded, parts)?;
        let reply = match self.grpc.clone().oneshot(call).await {
            Ok(reply) => reply,
            Err(never) => match never {},
        };
        let reply = response::read_reply(reply).await?;
        response::success(binding, &reply, &uri, &self.serialize, self.proto_names)
    }

    /// The body, refused early by `Content-Length` when it announces too
    /// much, and cut off while streaming when it does not.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, TranscodeError> {
        let too_large = TranscodeError::BodyTooLarge {
            limit: self.max_body_bytes,
        };
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if announced.is_some_and(|n| n > self.max_body_bytes) {
            return Err(too_large);
        }
        axum::body::to_bytes(body, self.max_body_bytes)
            .await
            .map_err(|err| {
                let err = err.into_inner();
                if err
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large
                } else {
                    TranscodeError::InvalidArgument {
                        field: None,
                        message: format!("reading the request body: {err}"),
                    }
                }
            })
    }

    /// A real gRPC request: POST to the method path, one length-prefixed
    /// frame, the forwarded headers, and the HTTP request's extensions
    /// (connection info, tracing context) so the gRPC side sees them.
    fn grpc_request(
        &self,
        binding: &Binding,
        encoded: &[u8],
        parts: Parts,
    ) -> Result<http::Request<tonic::body::Body>, TranscodeError> {
        let length = u32::try_from(encoded.len())
            .map_err(|_| TranscodeError::Internal("request message exceeds 4 GiB".into()))?;
        let mut frame = Vec::with_capacity(5 + encoded.len());
        frame.push(0);
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(encoded);

        let mut call = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )));
        *call.method_mut() = Method::POST;
        *call.version_mut() = Version::HTTP_2;
        *call.uri_mut() = binding.grpc_path.parse().map_err(|err| {
            TranscodeError::Internal(format!("gRPC path {}: {err}", binding.grpc_path))
        })?;
        *call.extensions_mut() = parts.extensions;
        let headers = call.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        for name in ALWAYS_FORWARDED.iter().chain(&self.forward_headers) {
            for value in parts.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Ok(call)
    }
}
