//! The transport: accepts connections on the one listener (through TLS when
//! configured), serves HTTP/1.1 and HTTP/2 on each with explicit limits, and
//! drains them on shutdown.
//!
//! tonic's own `Server` exposes none of the HTTP/1 limits (header size,
//! header-read and idle timeouts), so connections are served with
//! hyper-util's protocol-sniffing builder directly; the router is the same.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::service::{Service as _, service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::{Semaphore, watch},
    task::JoinSet,
    time::Instant,
};
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

/// Keepalive pings find dead peers on idle HTTP/2 connections; a peer that
/// does not answer within the timeout is dropped.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper refuses an HTTP/1 read buffer smaller than this.
const HYPER_MIN_BUF_SIZE: usize = 8 * 1024;

/// A TLS handshake that has not finished by then is dropped, so slow or idle
/// clients cannot hold connection slots.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes computed at once; more wait their turn.
const CONCURRENT_HANDSHAKES: usize = 128;

/// How long a connection closed for making no request has to finish its
/// goodbye (an HTTP/2 GOAWAY and the PING that confirms it) before it is
/// dropped; a client that does not answer is not waited for.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// After an accept error such as EMFILE, retrying at once would spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// File descriptors the process needs besides its connections: the
/// listener, the database's, the JWKS client's, logs.
const RESERVED_FILES: u64 = 64;

/// Raises the open-file limit to its hard cap, as a server holding many
/// sockets must (the usual soft limit is 1024), and warns when
/// `max_connections` still does not fit under it: accepts would then fail
/// (EMFILE) before the connection limit applied.
fn raise_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 + RESERVED_FILES => tracing::warn!(
            limit,
            max_connections,
            "the open-file limit is below --max-connections; accepts will fail before it"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "reading or raising the open-file limit failed"),
    }
}

/// The transport limits, all from the configuration.
#[derive(Clone, Debug)]
pub struct Transport {
    /// Request header block, in bytes, on HTTP/1 (431 beyond it) and HTTP/2
    /// (the advertised SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_bytes: u32,
    /// How long an HTTP/1 connection may go without a complete request head:
    /// from the moment it opens, or from the end of the previous response.
    /// This bounds slowloris heads and idle keep-alive connections alike.
    /// Any connection, HTTP/2 too, that has made no request this long after
    /// it opened is closed (see [`serve_connection`]).
    pub http1_header_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
    /// Connections served at once; beyond it the accept loop waits, and new
    /// connections with it, in the listen backlog.
    pub max_connections: usize,
    /// How long a connection may go with no call open and none started
    /// before it is closed gracefully (see [`serve_connection`]).
    pub idle_timeout: Duration,
    /// Set to the number of connections being served.
    pub open_connections: prometheus_client::metrics::gauge::Gauge,
    /// How long connections may take to finish once shutdown has begun,
    /// before they are closed.
    pub drain_timeout: Duration,
}

impl Transport {
    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(self.http1_header_timeout)
            // The read buffer caps the request head; a head that does not
            // fit is answered 431 before anything is allocated for it.
            .max_buf_size((self.max_header_bytes as usize).max(HYPER_MIN_BUF_SIZE));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .max_header_list_size(self.max_header_bytes)
            .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
        builder
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then closes the
/// listener, asks every connection to finish (HTTP/2 GOAWAY, HTTP/1 close
/// after the current response) and waits up to the drain timeout for them.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    transport: &Transport,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(transport.builder());
    let service = TowerToHyperService::new(router);
    let handshakes = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    // Flips once, when shutdown begins: every connection then finishes what
    // it has in flight and takes nothing new.
    let (drain, draining) = watch::channel(false);
    // Owns every connection task: finished ones are reaped as we go, the
    // rest are aborted when the drain timeout ends.
    let mut connections = JoinSet::new();
    raise_file_limit(transport.max_connections);
    let timers = Timers {
        first_request: transport.http1_header_timeout,
        idle: transport.idle_timeout,
    };
    // Whether the limit has been reached since the count was last well
    // below it: warned of once, not once for every connection let in as
    // another closes.
    let mut at_limit = false;
    let well_below = transport
        .max_connections
        .saturating_sub((transport.max_connections / 10).max(1));
    tokio::pin!(shutdown);
    loop {
        let open = connections.len();
        transport.open_connections.set(open as i64);
        let room = open < transport.max_connections;
        if !room && !at_limit {
            at_limit = true;
            tracing::warn!(
                limit = transport.max_connections,
                "connection limit reached; new connections wait in the backlog"
            );
        } else if open < well_below {
            at_limit = false;
        }
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept(), if room => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(err) => {
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small gRPC frames must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let service = service.clone();
        let draining = draining.clone();
        match &tls {
            None => {
                connections.spawn(async move {
                    serve_connection(&builder, tcp, service, draining, timers).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshakes = Arc::clone(&handshakes);
                connections.spawn(async move {
                    let Some(stream) = handshake(&acceptor, tcp, &handshakes).await else {
                        return;
                    };
                    serve_connection(&builder, stream, service, draining, timers).await;
                });
            }
        }
    }
    // New clients are refused from here on, not left waiting in the backlog.
    drop(listener);
    tracing::debug!(open = connections.len(), "draining connections");
    let _ = drain.send(true);
    let drained = async {
        while connections.join_next().await.is_some() {
            transport.open_connections.set(connections.len() as i64);
        }
    };
    if tokio::time::timeout(transport.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; closing them");
    }
    connections.shutdown().await;
}

/// When a connection that makes no requests is closed.
#[derive(Clone, Copy)]
struct Timers {
    /// For its first request, from when it opens.
    first_request: Duration,
    /// For each later pause with no call open.
    idle: Duration,
}

/// Serves one connection until it ends: gracefully (HTTP/2 GOAWAY, HTTP/1
/// close after the current response) once `draining` flips, and also when
/// no request has arrived `first_request` after it opened, or when it has
/// had no call open and started none for the idle timeout.
///
/// hyper's HTTP/1 header timer starts only once the connection is known to
/// be HTTP/1, and hyper-util tells the versions apart by reading up to the
/// 24-byte HTTP/2 preface with no timer of its own; HTTP/2 keepalive starts
/// only after the HTTP/2 handshake. So a peer that sends nothing, part of the
/// preface, or the preface without its SETTINGS would hold its socket for
/// ever. Counting calls at the service covers all of them, whatever the
/// protocol turns out to be.
///
/// An HTTP/2 client, once it has made a request, may keep its connection
/// for as long as it answers pings: the idle timer sends away one that has
/// been idle for a while (idle as gRPC's MAX_CONNECTION_IDLE means it: no
/// call open, so a connection holding only a health watch is not idle), so
/// that clients that hold connections unused do not fill the connection
/// limit. The close is graceful, so a request that arrives just then is
/// still served (or, on HTTP/2, refused in a way the client knows it may
/// retry), and hyper ends the connection once the client has confirmed the
/// goodbye and every reply has been written.
///
/// Only a connection that never made a request is dropped by its timer
/// ([`GOODBYE_TIMEOUT`] after its goodbye): it has no reply to lose. One
/// that made requests is never dropped here, since nothing above hyper
/// tells a reply still in h2's send queue (a slow reader, a small flow
/// control window) from a client that will not take the goodbye; a silent
/// client is dropped by the keepalive (no answer to a ping within
/// [`HTTP2_KEEPALIVE_TIMEOUT`]), and at shutdown the drain timeout bounds
/// the rest.
async fn serve_connection<IO>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    service: TowerToHyperService<axum::Router>,
    mut draining: watch::Receiver<bool>,
    timers: Timers,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let calls = Arc::new(Calls::default());
    let counted = {
        let calls = Arc::clone(&calls);
        service_fn(move |request| CountedReply {
            call: Some(calls.start()),
            reply: service.call(request),
        })
    };
    let conn = builder.serve_connection(TokioIo::new(io), counted);
    tokio::pin!(conn);
    // The first request's deadline, then the goodbye's.
    let deadline = tokio::time::sleep(timers.first_request);
    tokio::pin!(deadline);
    let mut deadline_armed = true;
    // A tick of nothing would spin.
    let quarter = (timers.idle / QUARTERS).max(Duration::from_millis(1));
    let tick = tokio::time::sleep(quarter);
    tokio::pin!(tick);
    let mut timer = Timer::OPENED;
    loop {
        let serving = matches!(timer, Timer::Open { .. });
        let event = tokio::select! {
            biased;
            result = conn.as_mut() => return log_end(result),
            Ok(_) = draining.wait_for(|d| *d), if serving => Event::Drain,
            () = &mut deadline, if deadline_armed => Event::Deadline,
            () = &mut tick, if serving => Event::Tick,
        };
        let (next, action) = timer.fire(event, calls.now());
        match action {
            Action::Wait => {}
            Action::Close(why) => {
                tracing::debug!(why, "closing the connection");
                conn.as_mut().graceful_shutdown();
            }
            Action::Drop => return,
        }
        match event {
            Event::Tick => tick.as_mut().reset(Instant::now() + quarter),
            Event::Deadline => deadline_armed = false,
            Event::Drain => {}
        }
        if next == Timer::Goodbye && timer != Timer::Goodbye {
            deadline.as_mut().reset(Instant::now() + GOODBYE_TIMEOUT);
            deadline_armed = true;
        }
        timer = next;
    }
}

/// A connection's calls, counted at the service: how many have started,
/// and how many of those have ended.
#[derive(Default)]
struct Calls {
    started: AtomicU64,
    ended: AtomicU64,
}

impl Calls {
    fn start(self: &Arc<Self>) -> OpenCall {
        self.started.fetch_add(1, Ordering::Relaxed);
        OpenCall(Arc::clone(self))
    }

    fn now(&self) -> Activity {
        Activity {
            started: self.started.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
        }
    }
}

/// Keeps its call counted as open until dropped: with the reply's future,
/// then with its body, so a stream counts for as long as it runs, and a
/// call the client resets stops counting when hyper drops it.
struct OpenCall(Arc<Calls>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// The router's reply future, holding its call open until the reply
    /// comes, then handing the call to the reply's body. A future of its
    /// own rather than an `async` block, which would move the router's
    /// (large) future once more per call.
    struct CountedReply<F> {
        #[pin]
        reply: F,
        call: Option<OpenCall>,
    }
}

impl<F, E> Future for CountedReply<F>
where
    F: Future<Output = Result<http::Response<axum::body::Body>, E>>,
{
    type Output = Result<http::Response<CallBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let reply = std::task::ready!(this.reply.poll(cx));
        let call = this.call.take();
        Poll::Ready(reply.map(|reply| reply.map(|body| CallBody { body, _call: call })))
    }
}

/// A reply's body, holding its call open until hyper has taken all of it
/// (into its write buffer or h2's send queue) or given up on it; otherwise
/// it is the router's body.
struct CallBody {
    body: axum::body::Body,
    _call: Option<OpenCall>,
}

impl http_body::Body for CallBody {
    type Data = <axum::body::Body as http_body::Body>::Data;
    type Error = <axum::body::Body as http_body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The idle timer looks at a connection's calls this many times per idle
/// timeout, so a connection is sent away between 1 and 1.25 idle timeouts
/// after its last call ended or started.
const QUARTERS: u32 = 4;

/// Where a connection is in its life, for its timers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Timer {
    /// Served: `quiet` quarters of the idle timeout have gone by with no
    /// call open, and none started or ended since `seen` had (see
    /// [`Activity::events`]).
    Open { quiet: u32, seen: u64 },
    /// Sent away having made no request; dropped at the goodbye deadline
    /// unless a request comes first.
    Goodbye,
    /// Sent away after requests: left to finish its calls and write its
    /// replies, however long they take (a health watch, a slow batch
    /// upload, a slow reader).
    Leaving,
}

/// What fires: the deadline for the first request (and then the goodbye's),
/// a quarter of the idle timeout, or shutdown.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    Deadline,
    Tick,
    Drain,
}

/// A connection's calls when a timer fires.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Activity {
    started: u64,
    ended: u64,
}

impl Activity {
    fn open(self) -> u64 {
        self.started.saturating_sub(self.ended)
    }

    /// Calls started plus calls ended: it moves whenever one does, so the
    /// idle count restarts at a call's end as at its start.
    fn events(self) -> u64 {
        self.started + self.ended
    }
}

/// What the connection does when a timer fires.
#[derive(Debug, PartialEq)]
enum Action {
    Wait,
    /// Close gracefully, for the named reason.
    Close(&'static str),
    Drop,
}

impl Timer {
    const OPENED: Timer = Timer::Open { quiet: 0, seen: 0 };

    /// The next state when `event` fires, the connection's calls being
    /// `now`, and what to do.
    fn fire(self, event: Event, now: Activity) -> (Timer, Action) {
        // Where a connection goes when it is sent away.
        let away = if now.started == 0 {
            Timer::Goodbye
        } else {
            Timer::Leaving
        };
        match (self, event) {
            (Timer::Open { .. }, Event::Deadline) if now.started == 0 => (
                Timer::Goodbye,
                Action::Close("no request within the header timeout"),
            ),
            (Timer::Open { quiet, seen }, Event::Tick) => {
                if now.open() > 0 || now.events() != seen {
                    (
                        Timer::Open {
                            quiet: 0,
                            seen: now.events(),
                        },
                        Action::Wait,
                    )
                } else if quiet + 1 < QUARTERS {
                    (
                        Timer::Open {
                            quiet: quiet + 1,
                            seen,
                        },
                        Action::Wait,
                    )
                } else {
                    (away, Action::Close("idle for the idle timeout"))
                }
            }
            (Timer::Open { .. }, Event::Drain) => (away, Action::Close("shutting down")),
            // A request that came in after all, in the goodbye's window, is
            // served like any other.
            (Timer::Goodbye, Event::Deadline) if now.started > 0 => (Timer::Leaving, Action::Wait),
            (Timer::Goodbye, Event::Deadline) => (Timer::Goodbye, Action::Drop),
            (timer, _) => (timer, Action::Wait),
        }
    }
}

async fn handshake<IO>(
    acceptor: &TlsAcceptor,
    tcp: IO,
    handshakes: &Semaphore,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = async {
        // Waiting for the ClientHello costs nothing, so it holds no slot:
        // a client that sends nothing waits out its timeout alone, not in
        // front of every client behind it. The slot bounds the signing
        // work that follows, and the one timeout covers the wait for it.
        let start =
            LazyConfigAcceptor::new(tokio_rustls::rustls::server::Acceptor::default(), tcp).await?;
        let _permit = handshakes.acquire().await.map_err(std::io::Error::other)?;
        start.into_stream(Arc::clone(acceptor.config())).await
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(%err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Connection errors are the peer's business (resets, timeouts, garbage),
/// so they are logged at debug and never reach a caller.
fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = result {
        tracing::debug!(%err, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls started and ended.
    const fn calls(started: u64, ended: u64) -> Activity {
        Activity { started, ended }
    }

    /// Fires `events` at `timer` with the calls beside them, returning the
    /// last state and every action.
    fn run(mut timer: Timer, events: &[(Event, Activity)]) -> (Timer, Vec<Action>) {
        let mut actions = Vec::new();
        for &(event, now) in events {
            let action;
            (timer, action) = timer.fire(event, now);
            actions.push(action);
        }
        (timer, actions)
    }

    #[test]
    fn a_connection_idle_for_four_quarters_is_sent_away_and_a_new_call_restarts_the_count() {
        // A call started and ended in the first quarter, the first-request
        // deadline, then three quiet quarters: still open.
        let mut events = vec![(Event::Tick, calls(1, 1)), (Event::Deadline, calls(1, 1))];
        events.extend([(Event::Tick, calls(1, 1)); 3]);
        let (timer, actions) = run(Timer::OPENED, &events);
        assert_eq!(timer, Timer::Open { quiet: 3, seen: 2 });
        assert!(actions.iter().all(|a| *a == Action::Wait));
        // A call in the next quarter starts the count again.
        let (timer, _) = run(timer, &[(Event::Tick, calls(2, 2)); 4]);
        assert_eq!(timer, Timer::Open { quiet: 3, seen: 4 });
        assert_eq!(
            timer.fire(Event::Tick, calls(2, 2)),
            (Timer::Leaving, Action::Close("idle for the idle timeout"))
        );
    }

    #[test]
    fn a_connection_with_a_call_open_is_never_idle_and_its_end_restarts_the_count() {
        // One stream, started in the first quarter and still running.
        let (timer, actions) = run(Timer::OPENED, &[(Event::Tick, calls(1, 0)); 40]);
        assert_eq!(timer, Timer::Open { quiet: 0, seen: 1 });
        assert!(actions.iter().all(|a| *a == Action::Wait));
        // It ends between two looks: the first look after counts as busy,
        // so four whole quiet quarters still follow the end.
        let (timer, actions) = run(timer, &[(Event::Tick, calls(1, 1)); 4]);
        assert_eq!(timer, Timer::Open { quiet: 3, seen: 2 });
        assert!(actions.iter().all(|a| *a == Action::Wait));
        assert_eq!(
            timer.fire(Event::Tick, calls(1, 1)),
            (Timer::Leaving, Action::Close("idle for the idle timeout"))
        );
    }

    #[test]
    fn a_connection_sent_away_after_requests_is_left_to_finish_its_calls() {
        for event in [Event::Tick, Event::Deadline, Event::Drain] {
            let (timer, actions) = run(Timer::Leaving, &[(event, calls(3, 3)); 8]);
            assert_eq!(timer, Timer::Leaving);
            assert!(actions.iter().all(|a| *a == Action::Wait));
        }
    }

    #[test]
    fn a_connection_without_a_request_gets_a_goodbye_then_is_dropped_unless_one_came() {
        assert_eq!(
            Timer::OPENED.fire(Event::Deadline, calls(0, 0)),
            (
                Timer::Goodbye,
                Action::Close("no request within the header timeout")
            )
        );
        assert_eq!(
            Timer::Goodbye.fire(Event::Deadline, calls(0, 0)),
            (Timer::Goodbye, Action::Drop)
        );
        assert_eq!(
            Timer::Goodbye.fire(Event::Deadline, calls(1, 0)),
            (Timer::Leaving, Action::Wait)
        );
        // An idle timeout shorter than the header timeout sends it away first.
        let (timer, _) = run(Timer::OPENED, &[(Event::Tick, calls(0, 0)); 3]);
        assert_eq!(
            timer.fire(Event::Tick, calls(0, 0)),
            (Timer::Goodbye, Action::Close("idle for the idle timeout"))
        );
        // Ticks do not hurry a goodbye along.
        assert_eq!(
            Timer::Goodbye.fire(Event::Tick, calls(0, 0)),
            (Timer::Goodbye, Action::Wait)
        );
    }

    #[test]
    fn shutdown_sends_a_connection_away_and_drops_it_only_if_it_never_made_a_request() {
        let open = Timer::Open { quiet: 2, seen: 5 };
        assert_eq!(
            open.fire(Event::Drain, calls(5, 5)),
            (Timer::Leaving, Action::Close("shutting down"))
        );
        assert_eq!(
            Timer::OPENED.fire(Event::Drain, calls(0, 0)),
            (Timer::Goodbye, Action::Close("shutting down"))
        );
    }

    #[test]
    fn the_first_request_deadline_passes_quietly_once_a_request_has_come() {
        let open = Timer::Open { quiet: 2, seen: 5 };
        assert_eq!(
            open.fire(Event::Deadline, calls(5, 5)),
            (open, Action::Wait)
        );
    }
}
