//! The transport: accepts connections on the one listener (through TLS when
//! configured), serves HTTP/1.1 and HTTP/2 on each with explicit limits, and
//! drains them on shutdown.
//!
//! tonic's own `Server` exposes none of the HTTP/1 limits (header size,
//! header-read and idle timeouts), so connections are served with
//! hyper-util's protocol-sniffing builder directly; the router is the same.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
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
    /// How long a connection may go without starting a request before it is
    /// closed gracefully (see [`serve_connection`]).
    pub idle_timeout: Duration,
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
    let mut at_limit = false;
    tokio::pin!(shutdown);
    loop {
        let room = connections.len() < transport.max_connections;
        if room {
            at_limit = false;
        } else if !at_limit {
            at_limit = true;
            tracing::warn!(
                limit = transport.max_connections,
                "connection limit reached; new connections wait in the backlog"
            );
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
        let timers = Timers {
            first_request: transport.http1_header_timeout,
            idle: transport.idle_timeout,
        };
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
    let drained = async { while connections.join_next().await.is_some() {} };
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
    /// For each later one, from the previous one's start.
    idle: Duration,
}

/// Serves one connection until it ends: gracefully (HTTP/2 GOAWAY, HTTP/1
/// close after the current response) once `draining` flips, and also when
/// no request has arrived `first_request` after it opened, or none has
/// started for the idle timeout since.
///
/// hyper's HTTP/1 header timer starts only once the connection is known to
/// be HTTP/1, and hyper-util tells the versions apart by reading up to the
/// 24-byte HTTP/2 preface with no timer of its own; HTTP/2 keepalive starts
/// only after the HTTP/2 handshake. So a peer that sends nothing, part of the
/// preface, or the preface without its SETTINGS would hold its socket for
/// ever. Counting requests at the service covers all of them, whatever the
/// protocol turns out to be. The close is graceful, so a request that
/// arrives just then is still served (or, on HTTP/2, refused in a way the
/// client knows it may retry); a peer that neither takes the goodbye nor
/// makes a request within [`GOODBYE_TIMEOUT`] is dropped.
///
/// An HTTP/2 client, once it has made a request, may keep its connection
/// for as long as it answers pings: the idle timer closes one that starts
/// no request for a while, so that clients that hold connections unused
/// do not fill the connection limit. Calls in flight then finish; the
/// timer looks at the request count four times per period rather than
/// timing each request.
async fn serve_connection<IO>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    service: TowerToHyperService<axum::Router>,
    mut draining: watch::Receiver<bool>,
    timers: Timers,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requests = Arc::new(AtomicU64::new(0));
    let counted = {
        let requests = Arc::clone(&requests);
        service_fn(move |request| {
            requests.fetch_add(1, Ordering::Relaxed);
            service.call(request)
        })
    };
    let conn = builder.serve_connection(TokioIo::new(io), counted);
    tokio::pin!(conn);
    let timer = tokio::time::sleep(timers.first_request);
    tokio::pin!(timer);
    let (mut timing, mut closing) = (Timer::FirstRequest, false);
    loop {
        tokio::select! {
            biased;
            result = conn.as_mut() => return log_end(result),
            Ok(_) = draining.wait_for(|d| *d), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = &mut timer, if timing != Timer::Off => {
                let action;
                (timing, action) = timing.fire(requests.load(Ordering::Relaxed), closing);
                match action {
                    Action::Wait => {}
                    Action::Close(why) => {
                        tracing::debug!("no request within the {why} timeout; closing the connection");
                        if !closing {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                    Action::Drop => return,
                }
                match timing {
                    Timer::Idle { .. } => timer.as_mut().reset(Instant::now() + timers.idle / QUARTERS),
                    Timer::Goodbye => timer.as_mut().reset(Instant::now() + GOODBYE_TIMEOUT),
                    Timer::FirstRequest | Timer::Off => {}
                }
            },
        }
    }
}

/// The idle timer looks at a connection's request count this many times
/// per idle timeout.
const QUARTERS: u32 = 4;

/// A connection's timer, by what it waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Timer {
    FirstRequest,
    /// Quarters of the idle timeout gone by without a new request, and the
    /// request count when they began.
    Idle {
        quarters: u32,
        seen: u64,
    },
    /// The goodbye of a connection that made no request.
    Goodbye,
    Off,
}

/// What the connection does when its timer fires.
#[derive(Debug, PartialEq)]
enum Action {
    Wait,
    /// Close gracefully, for want of a request within the named timeout.
    Close(&'static str),
    Drop,
}

impl Timer {
    /// The timer's next state when it fires, the connection having seen
    /// `count` requests and `closing` already, and what to do.
    fn fire(self, count: u64, closing: bool) -> (Timer, Action) {
        match self {
            // Already closing for another reason, after a request: its
            // calls in flight finish, and nothing needs timing.
            Timer::FirstRequest | Timer::Idle { .. } if closing && count > 0 => {
                (Timer::Off, Action::Wait)
            }
            Timer::FirstRequest if count > 0 => (
                Timer::Idle {
                    quarters: 0,
                    seen: count,
                },
                Action::Wait,
            ),
            Timer::FirstRequest => (Timer::Goodbye, Action::Close("header")),
            Timer::Idle { seen, .. } if count != seen => (
                Timer::Idle {
                    quarters: 0,
                    seen: count,
                },
                Action::Wait,
            ),
            Timer::Idle { quarters, seen } if quarters + 1 < QUARTERS => (
                Timer::Idle {
                    quarters: quarters + 1,
                    seen,
                },
                Action::Wait,
            ),
            Timer::Idle { .. } => (Timer::Off, Action::Close("idle")),
            // A request that came in after all, in the goodbye's window, is
            // served to its end like any other.
            Timer::Goodbye if count > 0 => (Timer::Off, Action::Wait),
            Timer::Goodbye | Timer::Off => (Timer::Off, Action::Drop),
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

    /// Fires `timer` once per count in `counts`, returning the last state
    /// and every action.
    fn run(mut timer: Timer, counts: &[u64]) -> (Timer, Vec<Action>) {
        let mut actions = Vec::new();
        for &count in counts {
            let action;
            (timer, action) = timer.fire(count, false);
            actions.push(action);
        }
        (timer, actions)
    }

    #[test]
    fn a_connection_that_starts_no_request_for_four_quarters_is_closed_and_a_new_request_restarts_the_count()
     {
        // First request seen at the header timeout, then three quiet
        // quarters: still open.
        let (timer, actions) = run(Timer::FirstRequest, &[1, 1, 1, 1]);
        assert_eq!(
            timer,
            Timer::Idle {
                quarters: 3,
                seen: 1
            }
        );
        assert!(actions.iter().all(|a| *a == Action::Wait));
        // A request in the next quarter starts the count again.
        let (timer, _) = run(timer, &[2, 2, 2, 2]);
        assert_eq!(
            timer,
            Timer::Idle {
                quarters: 3,
                seen: 2
            }
        );
        assert_eq!(timer.fire(2, false), (Timer::Off, Action::Close("idle")));
    }

    #[test]
    fn a_connection_without_a_request_gets_a_goodbye_then_is_dropped_unless_one_came() {
        assert_eq!(
            Timer::FirstRequest.fire(0, false),
            (Timer::Goodbye, Action::Close("header"))
        );
        assert_eq!(Timer::Goodbye.fire(0, true), (Timer::Off, Action::Drop));
        assert_eq!(Timer::Goodbye.fire(1, true), (Timer::Off, Action::Wait));
    }

    #[test]
    fn a_connection_already_closing_after_a_request_is_left_to_finish() {
        assert_eq!(
            Timer::FirstRequest.fire(3, true),
            (Timer::Off, Action::Wait)
        );
        let idle = Timer::Idle {
            quarters: 3,
            seen: 3,
        };
        assert_eq!(idle.fire(3, true), (Timer::Off, Action::Wait));
        // Draining before any request: the goodbye still ends it.
        assert_eq!(
            Timer::FirstRequest.fire(0, true),
            (Timer::Goodbye, Action::Close("header"))
        );
    }
}
