//! Tests of the transcoder as a whole: shared helpers (a fake gRPC service
//! that records what it receives, a way to send HTTP requests through the
//! router, and a builder for throwaway descriptor pools).
//!
//! - `template`: path-template parsing, matching and expansion tables.
//! - `json`: proto3 JSON mapping edge cases.
//! - `golden`: one request per binding of timesheets.proto → the exact gRPC request.
//! - `interop`: the same paths against a real tonic server.
//! - `replies`: success responses (status, Location, Link, field names).
//! - `reply_json`: the direct reply writer against prost-reflect, on random messages.
//! - `request_json`: the direct request writer against prost-reflect, on random and mutated bodies.
//! - `errors`: every error shape.
//! - `generic`: rule features timesheets.proto does not use, on a test pool.

mod errors;
mod generic;
mod golden;
mod interop;
mod json;
mod replies;
mod reply_json;
mod request_json;
mod template;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::body::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage as _};
use tower::ServiceExt as _;

use super::{GrpcService, TranscodeOptions, Transcoder};
use crate::proto::{SERVICE_NAME, descriptor_pool};

/// What the fake gRPC service received.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub path: String,
    pub headers: HeaderMap,
    /// The request message, without the 5-byte frame header.
    pub message: Bytes,
}

type Reply = Arc<dyn Fn(&Received) -> Response<tonic::body::Body> + Send + Sync>;

/// A gRPC service that records each request and answers with `reply`.
pub(super) fn fake(
    reply: impl Fn(&Received) -> Response<tonic::body::Body> + Send + Sync + 'static,
) -> (GrpcService, Arc<Mutex<Vec<Received>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let reply: Reply = Arc::new(reply);
    let recorder = Arc::clone(&log);
    let service = tower::service_fn(move |request: Request<tonic::body::Body>| {
        let (log, reply) = (Arc::clone(&recorder), Arc::clone(&reply));
        async move {
            let (parts, body) = request.into_parts();
            let frame = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                // As tonic answers a request body that fails: with its
                // status, having received nothing.
                Err(status) => return Ok(status.into_http()),
            };
            assert_eq!(frame[0], 0, "uncompressed frame");
            let length = u32::from_be_bytes(frame[1..5].try_into().expect("4 bytes")) as usize;
            assert_eq!(frame.len(), 5 + length, "one length-prefixed frame");
            let received = Received {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                message: frame.slice(5..),
            };
            let response = reply(&received);
            log.lock().expect("log").push(received);
            Ok::<_, Infallible>(response)
        }
    });
    (GrpcService::new(service), log)
}

/// A successful unary gRPC reply carrying `message`.
pub(super) fn ok_reply(message: &impl prost::Message) -> Response<tonic::body::Body> {
    raw_reply(&message.encode_to_vec())
}

/// A successful unary gRPC reply carrying an already encoded message.
pub(super) fn raw_reply(encoded: &[u8]) -> Response<tonic::body::Body> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(encoded);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().expect("header"));
    let body = http_body_util::Full::new(Bytes::from(frame))
        .with_trailers(async move { Some(Ok(trailers)) });
    Response::builder()
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::new(body))
        .expect("response")
}

/// A failed call, as tonic sends it (trailers-only).
pub(super) fn status_reply(status: tonic::Status) -> Response<tonic::body::Body> {
    status.into_http()
}

/// The transcoder for timesheets.proto with `options`.
pub(super) fn timesheets(options: TranscodeOptions) -> Transcoder {
    Transcoder::new(descriptor_pool(), &[SERVICE_NAME], options)
        .expect("timesheets.proto transcodes")
}

/// What came back over HTTP.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "body is JSON ({err}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }
}

/// Sends `request` through a router built from `transcoder` and `grpc`.
pub(super) async fn send(
    transcoder: Transcoder,
    grpc: GrpcService,
    request: Request<axum::body::Body>,
) -> Answer {
    let router = transcoder.into_router(grpc);
    let response = router.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A request with an optional JSON body.
pub(super) fn http(method: &str, uri: &str, body: &str) -> Request<axum::body::Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .expect("request")
}

/// The timesheets pool plus one file, given as the JSON form of a
/// `FileDescriptorProto` (so `google.api.http` options can be written
/// inline as `"[google.api.http]"`), for rules timesheets.proto lacks.
pub(super) fn pool_with(file_json: &str) -> DescriptorPool {
    let mut pool = descriptor_pool().clone();
    let desc = pool
        .get_message_by_name("google.protobuf.FileDescriptorSet")
        .expect("descriptor.proto is imported");
    let set_json = format!("{{\"file\": [{file_json}]}}");
    let mut de = serde_json::Deserializer::from_str(&set_json);
    let set = DynamicMessage::deserialize(desc, &mut de).expect("file descriptor JSON");
    assert_eq!(
        set.descriptor().full_name(),
        "google.protobuf.FileDescriptorSet"
    );
    pool.decode_file_descriptor_set(prost::Message::encode_to_vec(&set).as_slice())
        .expect("test file builds");
    pool
}
