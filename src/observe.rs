//! What happens to every request before routing, whatever its protocol:
//! a request id, a tracing span, admission control (global concurrency
//! limit with load shedding), deadlines, and the shutdown grace period. And
//! per-call metrics around the TimesheetService, where every protocol has
//! become a gRPC call, and the grace period's end for response streams
//! ([`GraceCut`]).

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use aws_lc_rs::digest;
use axum::body::Body;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use tokio::{sync::Semaphore, sync::watch, time::Instant};
use tonic::Code;
use tower::{Layer, Service};
use tracing::{Instrument, field::Empty};

use crate::{
    auth::AuthError,
    headers::{
        GRPC_MESSAGE, GRPC_STATUS, GRPC_TIMEOUT, Protocol, RETRY_AFTER_SECONDS, X_REQUEST_ID,
        wants_grpc_web_text,
    },
    metrics::{CallKey, Metrics},
    transcode,
};

mod streams;
pub use streams::GraceCut;

/// Longest client request id we keep; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;
/// The server answers DEADLINE_EXCEEDED a little before the deadline, so
/// the answer reaches the caller before its own timer fires (tonic reports
/// a timer expiry, on either side, as CANCELLED). A twentieth of the budget,
/// between 1 ms and 50 ms.
fn deadline_margin(deadline: Duration) -> Duration {
    (deadline / 20).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

/// When the outer layer will end the call with DEADLINE_EXCEEDED: an
/// extension, so the call's metrics can tell that ending from others.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// Settings of the outer layer.
#[derive(Clone)]
pub struct Admission {
    pub metrics: Arc<Metrics>,
    /// In-flight calls allowed at once; beyond it calls are shed, not queued.
    pub permits: Arc<Semaphore>,
    /// Flips to true when the shutdown grace period is over.
    pub grace_over: watch::Receiver<bool>,
    /// Deadline for HTTP/JSON calls without their own `grpc-timeout`.
    pub http_timeout: Duration,
    /// How long a request body may send nothing before its read fails.
    pub body_timeout: Duration,
}

/// The server-wide layer.
#[derive(Clone)]
pub struct ObserveLayer {
    admission: Admission,
}

impl ObserveLayer {
    pub fn new(admission: Admission) -> Self {
        Self { admission }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
    admission: Admission,
}

/// A reply made here rather than by the service: trailers-only for gRPC
/// and gRPC-Web (as text when `web_text`), the AIP-193 JSON shape for HTTP.
fn reject(
    protocol: Protocol,
    web_text: bool,
    code: Code,
    message: &str,
    http: http::StatusCode,
) -> Response<Body> {
    let mut response = match protocol {
        Protocol::Json => transcode::error_response(code, message, Some(http)),
        Protocol::Grpc | Protocol::GrpcWeb => {
            protocol.trailers_only(web_text, tonic::Status::new(code, message))
        }
    };
    if matches!(code, Code::Unavailable | Code::ResourceExhausted) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// What a call still running at the end of the shutdown grace period is
/// told, with UNAVAILABLE.
const SHUTTING_DOWN: &str = "server is shutting down; retry";

/// Resolves when the shutdown grace period is over.
async fn wait_for_grace_over(mut grace_over: watch::Receiver<bool>) {
    // A dropped sender means no shutdown is coming: wait forever.
    if grace_over.wait_for(|over| *over).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The method a gRPC or gRPC-Web path names on the TimesheetService, the
/// service whose calls the metrics count.
fn service_method(path: &str) -> Option<&str> {
    path.strip_prefix('/')?
        .strip_prefix(crate::proto::SERVICE_NAME)?
        .strip_prefix('/')
}

/// `grpc-timeout` (`<digits><H|M|S|m|u|n>`, at most 8 digits).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut id = headers
        .get(X_REQUEST_ID)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID
                && v.to_str()
                    .is_ok_and(|s| s.chars().all(|c| c.is_ascii_graphic()))
        })
        .cloned()
        .unwrap_or_else(|| {
            let mut text = uuid::Uuid::encode_buffer();
            HeaderValue::from_str(uuid::Uuid::now_v7().simple().encode_lower(&mut text))
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        });
    // Every response carries a different id, so HTTP/2 must not add it to
    // the HPACK tables (`never indexed`): each one would push out entries
    // that do repeat (the CORS headers), and every lookup would compare it
    // against the earlier ids under the same name.
    id.set_sensitive(true);
    id
}

/// Probes and metrics bypass admission, so an overloaded server can still
/// be observed and is not killed by its orchestrator for being busy. That
/// includes the gRPC health service: `Check`, which Kubernetes' gRPC probes
/// and grpc-health-probe call, and `Watch`, whose streams live as long as
/// their clients and need no token: admitted, a few of them sent without
/// a request message would hold every permit for good.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path.starts_with("/grpc.health.v1.Health/")
}

impl<S> Service<Request<Body>> for ObserveService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let admission = self.admission.clone();
        let protocol = Protocol::of(request.headers());
        let web_text = protocol == Protocol::GrpcWeb && wants_grpc_web_text(request.headers());
        let id = request_id(request.headers());
        request.headers_mut().insert(X_REQUEST_ID, id.clone());
        request.extensions_mut().insert(protocol);
        let request_id = id.to_str().unwrap_or_default();
        // The log writer formats a span's fields when they are recorded,
        // and for a call that succeeds that cost (about 6k instructions for
        // these four) buys nothing at info: only the "request finished"
        // line shows them, and it is written at debug, or as a warning for
        // a server failure, which records them then. `request_id` stays, so a warning
        // from inside the call still names its request; it is shown with
        // Display, since `request_id` only ever holds visible ASCII, and the
        // Debug form's escaping pass cost more than the rest of the span.
        let full = tracing::enabled!(tracing::Level::DEBUG);
        let span = if full {
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                protocol = protocol.as_str(),
                request_id = %request_id,
                rpc = Empty,
                subject = Empty,
                grpc_code = Empty,
            )
        } else {
            tracing::info_span!(
                "request",
                method = Empty,
                path = Empty,
                protocol = Empty,
                request_id = %request_id,
                rpc = Empty,
                subject = Empty,
                grpc_code = Empty,
            )
        };
        // What a server failure's warning records later, if the span lacks it.
        let deferred = (!full).then(|| (request.method().clone(), request.uri().clone()));
        let deadline = match (grpc_timeout(request.headers()), protocol) {
            (Some(timeout), _) => Some(timeout),
            (None, Protocol::Json) => Some(admission.http_timeout),
            (None, _) => None,
        };
        let exempt = exempt(request.uri().path());
        let started = Instant::now();
        // Only a TimesheetService call's metrics ask how its body fared,
        // and a JSON call's body is read whole by the transcoder, which
        // answers a failed read itself.
        let watched = protocol != Protocol::Json && service_method(request.uri().path()).is_some();
        request = guard_body(request, admission.body_timeout, watched);
        let budget = deadline.map(|d| d.saturating_sub(deadline_margin(d)));
        // Spent on arrival: answered below without doing any work, and so
        // counted there, since the call never reaches its own metrics.
        let mut spent = None;
        let mut limit = budget;
        match budget {
            // A JSON call's method is known only once the transcoder has
            // routed it: it goes on, its deadline already passed, and the
            // metrics layer answers it before any work and counts it. The
            // HTTP timeout still bounds it, should any other route take it.
            Some(Duration::ZERO) if protocol == Protocol::Json => {
                request.extensions_mut().insert(Deadline(started));
                limit = Some(admission.http_timeout);
            }
            Some(Duration::ZERO) => {
                spent = service_method(request.uri().path())
                    .map(|rpc| admission.metrics.call_key(rpc, protocol));
            }
            Some(budget) => {
                request.extensions_mut().insert(Deadline(started + budget));
            }
            None => {}
        }
        Box::pin(async move {
            let permit = if exempt {
                None
            } else {
                match Arc::clone(&admission.permits).try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        admission.metrics.record_shed();
                        let code = if protocol == Protocol::Json {
                            Code::Unavailable
                        } else {
                            Code::ResourceExhausted
                        };
                        let mut response = reject(
                            protocol,
                            web_text,
                            code,
                            "server is at capacity; retry shortly",
                            http::StatusCode::SERVICE_UNAVAILABLE,
                        );
                        response.headers_mut().insert(X_REQUEST_ID, id);
                        return Ok(response);
                    }
                }
            };
            let grace = wait_for_grace_over(admission.grace_over.clone());
            let call = async {
                match limit {
                    Some(Duration::ZERO) => {
                        if let Some(call) = spent {
                            let code = Code::DeadlineExceeded;
                            admission.metrics.record_call(call, code, Duration::ZERO);
                        }
                        None
                    }
                    Some(budget) => tokio::time::timeout(budget, inner.call(request)).await.ok(),
                    None => Some(inner.call(request).await),
                }
            };
            let mut response = tokio::select! {
                // The grace period first: when it ends as a deadline does,
                // the client is told UNAVAILABLE, and the call's metrics,
                // which look at the grace period first, say the same.
                biased;
                () = grace => reject(protocol, web_text, Code::Unavailable, SHUTTING_DOWN, http::StatusCode::SERVICE_UNAVAILABLE),
                response = call.instrument(span.clone()) => match response {
                    Some(Ok(response)) => response,
                    Some(Err(never)) => match never {},
                    None => reject(protocol, web_text, Code::DeadlineExceeded, "deadline exceeded", http::StatusCode::GATEWAY_TIMEOUT),
                },
            };
            drop(permit);
            response.headers_mut().insert(X_REQUEST_ID, id);
            let _entered = span.enter();
            let status = response.status().as_u16();
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            // gRPC failures travel as HTTP 200 with the code in the headers.
            let failed = response.status().is_server_error()
                || (protocol != Protocol::Json && server_failure(reply_code(&response)));
            if failed {
                if let Some((method, uri)) = deferred {
                    span.record("method", tracing::field::display(method));
                    span.record("path", uri.path());
                    span.record("protocol", protocol.as_str());
                }
                tracing::warn!(status, latency_ms, "request finished");
            } else {
                tracing::debug!(status, latency_ms, "request finished");
            }
            Ok(response)
        })
    }
}

/// Per-call metrics around the TimesheetService (outside the auth layer, so
/// refusals count too). By here every protocol is a gRPC call.
#[derive(Clone)]
pub struct CallMetricsLayer {
    metrics: Arc<Metrics>,
    grace_over: watch::Receiver<bool>,
}

impl CallMetricsLayer {
    /// `grace_over` is the outer layer's: it flips when in-flight calls are
    /// cut off at shutdown.
    pub fn new(metrics: Arc<Metrics>, grace_over: watch::Receiver<bool>) -> Self {
        Self {
            metrics,
            grace_over,
        }
    }
}

impl<S> Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallMetrics {
            inner,
            metrics: Arc::clone(&self.metrics),
            grace_over: self.grace_over.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
    grace_over: watch::Receiver<bool>,
}

/// A call on its way through [`CallMetrics`]. The outer layer ends calls
/// by dropping them (at their deadline, at the end of the shutdown grace
/// period) and so does hyper when the client goes away; such a call is
/// counted here, with the code its client was given, when it is dropped.
struct InFlight {
    metrics: Arc<Metrics>,
    call: CallKey,
    started: Instant,
    deadline: Option<Instant>,
    grace_over: watch::Receiver<bool>,
    finished: bool,
}

impl InFlight {
    fn finish(mut self, code: Code) {
        self.finished = true;
        self.metrics
            .record_call(self.call, code, self.started.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // In the outer layer's order: the grace period wins a tie.
        let code = if std::thread::panicking() {
            // The server's fault, whatever the client makes of the reset
            // stream that follows.
            Code::Internal
        } else if *self.grace_over.borrow() {
            Code::Unavailable
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Code::DeadlineExceeded
        } else {
            Code::Cancelled
        };
        self.metrics
            .record_call(self.call, code, self.started.elapsed());
    }
}

impl<S, B> Service<Request<B>> for CallMetrics<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let metrics = Arc::clone(&self.metrics);
        let protocol = request
            .extensions()
            .get::<Protocol>()
            .copied()
            .unwrap_or(Protocol::Grpc);
        let path = request.uri().path();
        let call = metrics.call_key(path.rsplit('/').next().unwrap_or(path), protocol);
        let in_flight = InFlight {
            metrics: Arc::clone(&metrics),
            call,
            started: Instant::now(),
            deadline: request.extensions().get::<Deadline>().map(|d| d.0),
            grace_over: self.grace_over.clone(),
            finished: false,
        };
        if in_flight.deadline.is_some_and(|d| Instant::now() >= d) {
            // Spent before the call reached this layer: no work for an
            // answer nobody awaits.
            in_flight.finish(Code::DeadlineExceeded);
            let expired = tonic::Status::deadline_exceeded("deadline exceeded").into_http();
            return Box::pin(std::future::ready(Ok(expired)));
        }
        // Nothing further in reads it.
        let body_read = request.extensions_mut().remove::<BodyRead>();
        // Called now, on the service that was polled ready, rather than on
        // a clone inside the future: nothing this layer does has to wait.
        let reply = self.inner.call(request);
        Box::pin(async move {
            let Ok(mut response) = reply.await;
            resource_exhausted_for_oversized_messages(&mut response);
            let body_failed = body_read.as_ref().is_some_and(BodyRead::failed);
            if !body_failed {
                invalid_argument_for_undecodable_grpc_web_text(&mut response);
            }
            let code = match reply_code(&response) {
                // What tonic (UNKNOWN) and tonic-web (INTERNAL) answer when
                // the request body stopped arriving: the client went away
                // mid-request, or broke its framing, and no answer reaches it.
                Code::Unknown | Code::Internal if body_failed => Code::Cancelled,
                code => code,
            };
            if let Some(refusal) = response.extensions().get::<AuthError>() {
                metrics.record_auth_failure(refusal.reason());
            }
            if logged_in_full(code) {
                let span = tracing::Span::current();
                span.record("rpc", metrics.method_label(call));
                span.record("grpc_code", transcode::code_name(code));
            }
            in_flight.finish(code);
            Ok(response)
        })
    }
}

/// Whether a request's body failed to arrive: an extension set by
/// [`guard_body`] and read by [`CallMetrics`]. tonic turns such a failure
/// into UNKNOWN and tonic-web into INTERNAL: by the time [`CallMetrics`]
/// sees the reply, only this tells it from a server error.
#[derive(Debug, Clone)]
pub struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    fn failed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `request`, its body, unless it has all arrived, under a [`GuardedBody`];
/// if `watched`, one whose outcome the [`BodyRead`] in its extensions tells.
fn guard_body(request: Request<Body>, timeout: Duration, watched: bool) -> Request<Body> {
    if http_body::Body::is_end_stream(request.body()) {
        return request;
    }
    let (mut parts, inner) = request.into_parts();
    let failed = watched.then(|| {
        let failed = Arc::new(AtomicBool::new(false));
        parts.extensions.insert(BodyRead(Arc::clone(&failed)));
        failed
    });
    let body = Body::new(GuardedBody {
        inner,
        timeout,
        timer: None,
        failed,
    });
    Request::from_parts(parts, body)
}

/// A request body whose read fails once it has sent nothing for `timeout`,
/// and which records a failed read, its own or the connection's.
/// A client that sends its headers and then stalls would otherwise hold its
/// connection, and its admission permit, for as long as it liked: nothing
/// else times a body (hyper times only an HTTP/1 request's head, and a gRPC
/// call need not have a deadline). The timer starts only when a read has
/// to wait, so a body that has already arrived, as most do, costs none.
struct GuardedBody {
    inner: Body,
    timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    failed: Option<Arc<AtomicBool>>,
}

impl GuardedBody {
    fn mark_failed(&self) {
        if let Some(failed) = &self.failed {
            failed.store(true, Ordering::Relaxed);
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.timer = None;
            if let Some(Err(_)) = &frame {
                this.mark_failed();
            }
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.timer = None;
        this.mark_failed();
        let stalled = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the request body sent nothing for too long",
        );
        Poll::Ready(Some(Err(axum::Error::new(stalled))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The status of a gRPC reply from its headers: failures are trailers-only
/// replies, with the status in the headers; a reply without one carries OK
/// in its trailers.
pub fn reply_code<B>(response: &Response<B>) -> Code {
    response
        .headers()
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

/// Whether the span's call fields (rpc, subject, grpc_code) are worth
/// recording: only the "request finished" line shows them, and it is
/// written at debug, or as a warning for a server failure (a 5xx, or a gRPC
/// code that maps to one). Each field costs a formatting pass, so they are
/// recorded only then.
pub fn logged_in_full(code: Code) -> bool {
    tracing::enabled!(tracing::Level::DEBUG) || server_failure(code)
}

/// Whether `code` is the server's failure, worth a warning at info: what
/// maps to a 5xx, except UNIMPLEMENTED, which is how a client learns a
/// method is not there (over HTTP/JSON, a quiet 404).
fn server_failure(code: Code) -> bool {
    code != Code::Unimplemented && transcode::http_status(code).is_server_error()
}

/// tonic reports a request message over the size limit as OUT_OF_RANGE;
/// the gRPC spec (and every other implementation) says RESOURCE_EXHAUSTED,
/// which is what clients retry-classify on.
fn resource_exhausted_for_oversized_messages<B>(response: &mut Response<B>) {
    let headers = response.headers();
    let out_of_range = headers.get(GRPC_STATUS).is_some_and(|v| v == "11");
    let oversized = headers
        .get(GRPC_MESSAGE)
        .and_then(|v| v.to_str().ok())
        .map(|m| {
            percent_encoding::percent_decode_str(m)
                .decode_utf8_lossy()
                .into_owned()
        })
        .is_some_and(|m| m.contains("message length too large"));
    if out_of_range && oversized {
        response
            .headers_mut()
            .insert(GRPC_STATUS, HeaderValue::from_static("8"));
    }
}

/// tonic-web answers a gRPC-Web request body it cannot decode (not
/// base64, cut short mid-quantum, trailers in a text body) with INTERNAL,
/// prefixed "tonic-web:". The body arrived whole (a failed read is told
/// apart before this is called), so the fault is the client's framing:
/// INVALID_ARGUMENT, not a server error that clients retry and alerts page on.
fn invalid_argument_for_undecodable_grpc_web_text<B>(response: &mut Response<B>) {
    let headers = response.headers();
    let internal = headers.get(GRPC_STATUS).is_some_and(|v| v == "13");
    let from_tonic_web = headers
        .get(GRPC_MESSAGE)
        .is_some_and(|m| m.as_bytes().starts_with(b"tonic-web:"));
    if internal && from_tonic_web {
        response
            .headers_mut()
            .insert(GRPC_STATUS, HeaderValue::from_static("3"));
    }
}

/// A short, stable, non-reversible tag for a subject in logs.
pub fn subject_tag(subject: &str) -> String {
    let digest = digest::digest(&digest::SHA256, subject.as_bytes());
    hex::encode(&digest.as_ref()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CreateTimesheet whose service reads the body and answers `code` if
    /// the read failed (as tonic does with UNKNOWN and tonic-web with
    /// INTERNAL) or when told to fail anyway.
    async fn call(metrics: &Arc<Metrics>, body: Body, code: Code, fail_anyway: bool) {
        let (_grace, grace_over) = watch::channel(false);
        let service = tower::service_fn(move |request: Request<Body>| async move {
            let read = http_body_util::BodyExt::collect(request.into_body()).await;
            let status = if read.is_err() || fail_anyway {
                tonic::Status::new(code, "failed")
            } else {
                tonic::Status::ok("")
            };
            Ok::<_, Infallible>(status.into_http())
        });
        let metrics_layer = CallMetricsLayer::new(Arc::clone(metrics), grace_over);
        let mut stack = metrics_layer.layer(service);
        let request = Request::post("/timesheets.v1.TimesheetService/CreateTimesheet")
            .body(body)
            .expect("request");
        let Ok(_) = stack
            .call(guard_body(request, Duration::from_millis(50), true))
            .await;
    }

    /// The count of `method`'s gRPC calls answered `code` in `metrics`.
    fn calls(metrics: &Metrics, method: &str, code: &str) -> u64 {
        let series = format!(
            "timesheets_requests_total{{method=\"{method}\",protocol=\"grpc\",code=\"{code}\"}} "
        );
        metrics
            .pushed()
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn failing_body() -> Body {
        let failure = Err::<axum::body::Bytes, _>(std::io::Error::other("connection reset"));
        Body::from_stream(futures::stream::iter([failure]))
    }

    #[tokio::test]
    async fn a_call_whose_request_body_failed_to_arrive_counts_as_cancelled_not_as_the_servers_fault()
     {
        let metrics = Metrics::new();
        call(&metrics, failing_body(), Code::Unknown, false).await;
        call(&metrics, failing_body(), Code::Internal, false).await;
        // One that stalls past the body timeout fails the same way.
        let stalled = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
        call(&metrics, Body::from_stream(stalled), Code::Unknown, false).await;
        // A body that arrived whole changes nothing: INTERNAL stays INTERNAL.
        call(&metrics, Body::from("whole"), Code::Internal, true).await;
        let count = |code| calls(&metrics, "CreateTimesheet", code);
        assert_eq!(
            (count("CANCELLED"), count("INTERNAL"), count("UNKNOWN")),
            (3, 1, 0),
            "{}",
            metrics.pushed()
        );
    }

    /// A GetTimesheet whose service never answers, polled once: dropping
    /// it is what the outer layer does at the call's deadline or at the end
    /// of the grace period, and what hyper does when the client goes away.
    async fn unanswered_get(
        metrics: &Arc<Metrics>,
        grace_over: &watch::Receiver<bool>,
        deadline: Option<Instant>,
    ) -> BoxFuture<'static, Result<Response<tonic::body::Body>, Infallible>> {
        let service = tower::service_fn(|_: Request<Body>| {
            std::future::pending::<Result<Response<tonic::body::Body>, Infallible>>()
        });
        let mut stack =
            CallMetricsLayer::new(Arc::clone(metrics), grace_over.clone()).layer(service);
        let mut request = Request::post("/timesheets.v1.TimesheetService/GetTimesheet")
            .body(Body::empty())
            .expect("request");
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(Deadline(deadline));
        }
        let mut call = stack.call(request);
        assert!(futures::poll!(&mut call).is_pending());
        call
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_ended_unanswered_counts_as_what_its_client_was_told() {
        let metrics = Metrics::new();
        let (grace, grace_over) = watch::channel(false);
        let soon = || Some(Instant::now() + Duration::from_millis(10));

        // The client went away, with or without a deadline to come.
        drop(unanswered_get(&metrics, &grace_over, None).await);
        drop(unanswered_get(&metrics, &grace_over, soon()).await);
        // The deadline passed while the call ran (the clock is paused:
        // only `advance` moves it).
        let late = unanswered_get(&metrics, &grace_over, soon()).await;
        tokio::time::advance(Duration::from_millis(10)).await;
        drop(late);
        // The grace period ended; as in the outer layer, that wins over a
        // deadline that passed at the same time.
        let cut_off = unanswered_get(&metrics, &grace_over, None).await;
        let cut_off_late = unanswered_get(&metrics, &grace_over, soon()).await;
        tokio::time::advance(Duration::from_millis(10)).await;
        grace.send_replace(true);
        drop((cut_off, cut_off_late));

        let count = |code| calls(&metrics, "GetTimesheet", code);
        assert_eq!(
            (
                count("CANCELLED"),
                count("DEADLINE_EXCEEDED"),
                count("UNAVAILABLE"),
            ),
            (2, 1, 2),
            "{}",
            metrics.pushed()
        );
    }

    #[test]
    fn request_ids_are_never_indexed_by_hpack_whether_made_or_echoed() {
        let made = request_id(&HeaderMap::new());
        assert_eq!(made.len(), 32);
        assert!(made.is_sensitive());

        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("client-chosen-7"));
        let echoed = request_id(&headers);
        assert_eq!(echoed, "client-chosen-7");
        assert!(echoed.is_sensitive());
    }
}
