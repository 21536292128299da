//! The HTTP side: one handler that routes a request, starts it in-process
//! as a real gRPC call through the given service (so the same auth layer
//! and limits apply, and apply first), reads and transcodes its body within
//! the limit into the call's message, and maps the reply back.

use std::{
    future::Future as _,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    response::Response,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header, request::Parts};
use http_body::Frame;
use prost_reflect::{DeserializeOptions, SerializeOptions};
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use crate::headers::{GRPC_TIMEOUT, Protocol, X_REQUEST_ID, wants_grpc_web_text};

use super::{
    GrpcService,
    error::{ErrorRenderer, TranscodeError},
    json, request, response,
    routes::{Lookup, RouteTable},
    rules::Binding,
    template::Capture,
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
    let protocol = Protocol::of_request(&request);
    if protocol != Protocol::Json {
        // A gRPC call for a service nobody serves lands here when the
        // transcoder is the fallback; it deserves a gRPC answer, not JSON.
        let web_text = wants_grpc_web_text(request.headers());
        return protocol.trailers_only(
            web_text,
            tonic::Status::unimplemented("no such gRPC method"),
        );
    }
    match shared.transcode(request).await {
        Ok(response) => response,
        Err(error) => shared.errors.render(error),
    }
}

impl Shared {
    async fn transcode(&self, request: Request) -> Result<Response, TranscodeError> {
        let (mut parts, body) = request.into_parts();
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
        // The gRPC call starts before the body is read, and its message
        // follows when it is ready. So the auth layer judges the credentials
        // first: a caller it refuses gets 401 or 403 whatever its body
        // holds, and unless the check waits (on a key refetch, say) the body
        // is not even read. A body that makes no message ends the call with
        // the error's code, so the call's metrics count it like any other.
        let (mut message, message_body) = pending_message();
        let call = self.grpc_request(binding, message_body, &mut parts)?;
        let bodyless = http_body::Body::is_end_stream(&body);
        let mut read = std::pin::pin!(self.request_message(binding, &captures, &parts, body));
        let mut unreadable = None;
        if bodyless {
            // Nothing to wait for: made before the call starts, the message
            // costs the call no second round of polls. A failure still
            // waits for the call, so a refusal is still the answer.
            unreadable = message.fill((&mut read).await);
        }
        let mut reply = std::pin::pin!(self.grpc.clone().oneshot(call));
        let reply = loop {
            tokio::select! {
                // An answer given before the message was needed wins.
                biased;
                reply = &mut reply => match reply {
                    Ok(reply) => break reply,
                    Err(never) => match never {},
                },
                read = &mut read, if message.is_waiting() => match read {
                    // The client went away mid-body, or broke its framing:
                    // the call is abandoned, and its metrics count it as
                    // cancelled, as on the gRPC routes.
                    Err(error @ TranscodeError::BodyUnreadable(_)) => return Err(error),
                    read => unreadable = message.fill(read),
                },
            }
        };
        // The service read the failure in place of the message, so its
        // reply is that failure: render it as it happened here.
        if let Some(error) = unreadable
            && message.failure_was_read()
        {
            return Err(error);
        }
        let reply = response::read_reply(reply).await?;
        response::success(
            binding,
            &reply,
            &parts.uri,
            &self.serialize,
            self.proto_names,
        )
    }

    /// The request message as one length-prefixed gRPC frame: the body
    /// read within the limit, with the path captures, query and headers.
    async fn request_message(
        &self,
        binding: &Binding,
        captures: &[Capture],
        parts: &Parts,
        body: Body,
    ) -> Result<Bytes, TranscodeError> {
        let body = self.read_body(&parts.headers, body).await?;
        json::check_depth(&body, self.max_json_depth)?;
        let encoded = request::encode(
            binding,
            captures,
            parts.uri.query(),
            &body,
            &parts.headers,
            &self.deserialize,
        )?;
        let length = u32::try_from(encoded.len())
            .map_err(|_| TranscodeError::Internal("request message exceeds 4 GiB".into()))?;
        let mut frame = Vec::with_capacity(5 + encoded.len());
        frame.push(0);
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&encoded);
        Ok(Bytes::from(frame))
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
                    TranscodeError::BodyUnreadable(err.to_string())
                }
            })
    }

    /// A real gRPC request: POST to the method path, the message to come
    /// in `body`, the forwarded headers, and the HTTP request's extensions
    /// (connection info, tracing context) so the gRPC side sees them.
    fn grpc_request(
        &self,
        binding: &Binding,
        body: PendingMessage,
        parts: &mut Parts,
    ) -> Result<http::Request<tonic::body::Body>, TranscodeError> {
        let mut call = http::Request::new(tonic::body::Body::new(body));
        *call.method_mut() = Method::POST;
        *call.version_mut() = Version::HTTP_2;
        *call.uri_mut() = binding.grpc_path.parse().map_err(|err| {
            TranscodeError::Internal(format!("gRPC path {}: {err}", binding.grpc_path))
        })?;
        *call.extensions_mut() = std::mem::take(&mut parts.extensions);
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

/// The sending half of [`PendingMessage`].
struct MessageSlot {
    sender: Option<oneshot::Sender<Result<Bytes, tonic::Status>>>,
    failure_read: Arc<AtomicBool>,
}

impl MessageSlot {
    fn is_waiting(&self) -> bool {
        self.sender.is_some()
    }

    /// Hands the call its message or, when the request makes none, a
    /// status with the error's code, which ends the call; returns that error.
    fn fill(&mut self, read: Result<Bytes, TranscodeError>) -> Option<TranscodeError> {
        let sender = self.sender.take()?;
        // The call may have ended without it (refused): nothing to do then.
        match read {
            Ok(frame) => {
                let _ = sender.send(Ok(frame));
                None
            }
            Err(error) => {
                let _ = sender.send(Err(tonic::Status::new(error.code(), error.to_string())));
                Some(error)
            }
        }
    }

    fn failure_was_read(&self) -> bool {
        self.failure_read.load(Ordering::Relaxed)
    }
}

/// A gRPC request body of one message frame that arrives once the HTTP
/// body is read and transcoded; or, when that fails, an error that tonic
/// answers with as its status (it keeps a `tonic::Status` as it is).
struct PendingMessage {
    receiver: Option<oneshot::Receiver<Result<Bytes, tonic::Status>>>,
    failure_read: Arc<AtomicBool>,
}

fn pending_message() -> (MessageSlot, PendingMessage) {
    let (sender, receiver) = oneshot::channel();
    let failure_read = Arc::new(AtomicBool::new(false));
    (
        MessageSlot {
            sender: Some(sender),
            failure_read: Arc::clone(&failure_read),
        },
        PendingMessage {
            receiver: Some(receiver),
            failure_read,
        },
    )
}

impl http_body::Body for PendingMessage {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let Some(receiver) = self.receiver.as_mut() else {
            return Poll::Ready(None);
        };
        let received = ready!(Pin::new(receiver).poll(cx));
        self.receiver = None;
        Poll::Ready(Some(match received {
            Ok(Ok(frame)) => Ok(Frame::data(frame)),
            Ok(Err(status)) => {
                self.failure_read.store(true, Ordering::Relaxed);
                Err(status)
            }
            // Unreachable while the slot and the call are dropped together.
            // Not CANCELLED: tonic reads that as the end of the request.
            Err(_) => Err(tonic::Status::aborted("the HTTP request was dropped")),
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.receiver.is_none()
    }
}
