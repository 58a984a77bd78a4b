//! Listeners: accept loops for the proxy (plain or TLS) and the admin API, serving HTTP/1.1
//! and HTTP/2 with hyper-util's auto builder, and draining connections on shutdown.
//!
//! A connection is bounded in time at every stage: its first bytes (and its TLS handshake)
//! within `first_byte_timeout` ([`FirstBytes`]); each HTTP/1.1 request head within
//! `idle_timeout` (hyper's header timeout, which also closes a connection idle between
//! requests); and a connection of either protocol with no request in flight for
//! `idle_timeout` is shut down gracefully (for HTTP/2, whose pings would otherwise keep an
//! idle connection alive for good). A connection from an address that holds
//! `max_connections_per_client` already is closed at once.

use crate::capacity::{is_trusted, Capacity};
use crate::config::IpNet;
use crate::first_bytes::FirstBytes;
use crate::metrics::Metrics;
use crate::request_line::{EncodedTargets, RequestLines};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Something that answers requests.
pub(crate) trait Handler: Send + Sync + 'static {
    /// What its answers' bodies are: whole (the proxy), or also streamed (the admin API's
    /// exports).
    type Body: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + From<Full<Bytes>>
        + Send
        + 'static;

    /// Answers `request`, which runs in a task of its own: `caller` resolves if the client
    /// goes away meanwhile (so that what it asked need not start).
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &'static str,
        caller: CallerGone,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// Resolves once the client of a request has gone away (its connection or stream closed
/// before the answer); never, for a request the proxy made itself. Once gone, it stays gone:
/// an exchange may wait on it more than once (for a slot, then in a pacing queue).
pub(crate) struct CallerGone(Caller);

enum Caller {
    /// The client waits: the sender lives as long as it does.
    Waiting(tokio::sync::oneshot::Receiver<()>),
    Gone,
    /// No client waits.
    Never,
}

impl CallerGone {
    /// For a request no client waits on (a replay, a fanned-out bulk operation).
    pub(crate) fn never() -> CallerGone {
        CallerGone(Caller::Never)
    }

    /// A pair: the caller's side lives as long as the client waits for the answer.
    pub(crate) fn pair() -> (tokio::sync::oneshot::Sender<()>, CallerGone) {
        let (present, gone) = tokio::sync::oneshot::channel();
        (present, CallerGone(Caller::Waiting(gone)))
    }

    /// Resolves when the client has gone.
    pub(crate) async fn wait(&mut self) {
        match &mut self.0 {
            // Nothing is ever sent: the receiver ends when the sender is dropped.
            Caller::Waiting(gone) => {
                let _ = gone.await;
                self.0 = Caller::Gone;
            }
            Caller::Gone => {}
            Caller::Never => std::future::pending().await,
        }
    }

    /// Whether the client has gone, now.
    pub(crate) fn is_gone(&mut self) -> bool {
        use tokio::sync::oneshot::error::TryRecvError;
        match &mut self.0 {
            Caller::Waiting(gone) => match gone.try_recv() {
                Err(TryRecvError::Empty) => false,
                Ok(()) | Err(TryRecvError::Closed) => {
                    self.0 = Caller::Gone;
                    true
                }
            },
            Caller::Gone => true,
            Caller::Never => false,
        }
    }
}

/// How long an idle connection, told to close, may take to do so before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A listener's time bounds on its connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) first_byte: Duration,
    pub(crate) idle: Duration,
    /// How long a shutdown waits for exchanges in flight (`[listen] drain_secs`).
    pub(crate) drain: Duration,
}

/// What a listener serves with.
pub(crate) struct Listener<H> {
    pub(crate) tcp: TcpListener,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) handler: Arc<H>,
    pub(crate) capacity: Capacity,
    pub(crate) timeouts: Timeouts,
    /// Connections from these count against no client's bound: they carry many clients.
    pub(crate) trusted_proxies: Arc<[IpNet]>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Accepts connections until `shutdown` turns true, then lets the open ones finish.
pub(crate) async fn serve<H: Handler>(listener: Listener<H>, mut shutdown: watch::Receiver<bool>) {
    let Listener {
        tcp,
        tls,
        handler,
        capacity,
        timeouts,
        trusted_proxies,
        metrics,
    } = listener;
    let builder = http_builder(timeouts);
    // Connection tasks, so that any still open after the drain timeout can be stopped.
    let mut connections = JoinSet::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    loop {
        let connection_slot = tokio::select! {
            slot = Arc::clone(&capacity.connections).acquire_owned() => slot.ok(),
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        while connections.try_join_next().is_some() {}
        let client_slot = match &capacity.per_client {
            Some(per_client) if !is_trusted(peer.ip(), &trusted_proxies) => match per_client.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    metrics.connection_closed("per_client");
                    tracing::debug!(%peer, limit = per_client.limit(), "A client's connection past its bound was closed.");
                    continue;
                }
            },
            _ => None,
        };
        let held = (connection_slot, capacity.open(), client_slot);
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            builder: Arc::clone(&builder),
            handler: Arc::clone(&handler),
            peer,
            scheme,
            timeouts,
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        connections.spawn(async move {
            let _held = held;
            match tls {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(timeouts.first_byte, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(stream)) => connection.serve(stream).await,
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed."),
                        Err(_) => {
                            connection.metrics.connection_closed("first_byte_timeout");
                            tracing::debug!(%peer, "TLS handshake timed out.");
                        }
                    }
                }
            }
        });
    }
    drop(tcp);
    let drained = tokio::time::timeout(timeouts.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("Connections were still open after the drain timeout; closing them.");
    }
    connections.abort_all();
}

/// The HTTP/1.1 and HTTP/2 server every connection of a listener is served with.
pub(crate) fn http_builder(timeouts: Timeouts) -> Arc<auto::Builder<TokioExecutor>> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.idle);
    // Pings close a connection whose peer is gone; the idle watch in `Connection::serve`
    // closes one that is alive and idle.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    Arc::new(builder)
}

/// One accepted connection and what it is served with.
pub(crate) struct Connection<H> {
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(crate) handler: Arc<H>,
    pub(crate) peer: SocketAddr,
    pub(crate) scheme: &'static str,
    pub(crate) timeouts: Timeouts,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl<H: Handler> Connection<H> {
    /// Serves the connection until it ends, the listener shuts down, or it is idle too long.
    pub(crate) async fn serve<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            builder,
            handler,
            peer,
            scheme,
            timeouts,
            metrics,
            mut shutdown,
        } = self;
        let activity = Arc::new(Activity::default());
        let service_activity = Arc::clone(&activity);
        // What the request lines' repair encoded, taken by each request in turn.
        let targets = Arc::new(EncodedTargets::default());
        let service_targets = Arc::clone(&targets);
        let requests = AtomicU64::new(0);
        let service = service_fn(move |mut request: Request<Incoming>| {
            let handler = Arc::clone(&handler);
            let busy = Busy::new(&service_activity);
            // HTTP/1 requests come in the order their lines were read (HTTP/2's are never
            // repaired, so they find nothing).
            let number = requests.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(encoded) = service_targets.take(number) {
                request.extensions_mut().insert(encoded);
            }
            async move {
                // The exchange runs in its own task: if the client goes away, hyper drops
                // this future (and `present` with it), but an exchange already admitted
                // still completes and is recorded.
                let (present, caller) = CallerGone::pair();
                let exchange = tokio::spawn(handler.handle(request, peer, scheme, caller));
                let response = exchange.await.unwrap_or_else(|error| {
                    tracing::error!(%error, "An exchange task failed.");
                    internal_error().map(H::Body::from)
                });
                drop((busy, present));
                Ok::<_, Infallible>(response)
            }
        });
        let io = TokioIo::new(RequestLines::new(FirstBytes::new(io, timeouts.first_byte), targets));
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let closing = tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    let timed_out = error
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
                    if timed_out {
                        metrics.connection_closed("first_byte_timeout");
                    }
                    // hyper answered a bare 400 (or 431, 414): no exchange records it.
                    if let Some(refused) = error.downcast_ref::<hyper::Error>().and_then(unparsed) {
                        metrics.connection_closed(refused);
                    }
                    tracing::debug!(%error, %peer, "Connection ended with an error.");
                }
                return;
            }
            _ = shutdown.changed() => timeouts.drain,
            _ = activity.idle_for(timeouts.idle) => {
                metrics.connection_closed("idle");
                CLOSE_GRACE
            }
        };
        connection.as_mut().graceful_shutdown();
        if tokio::time::timeout(closing, connection).await.is_err() {
            tracing::debug!(%peer, "A connection told to close did not; dropped.");
        }
    }
}

/// Requests in flight on one connection, and when one last started or ended. Kept in atomics
/// that a request only writes: the idle watch reads them when its own timer fires, so that a
/// busy connection costs no wake-up per request.
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `since` at the last start or end of a request.
    last: AtomicU64,
    since: std::time::Instant,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            since: std::time::Instant::now(),
        }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        crate::clock::elapsed_ms(self.since).unsigned_abs()
    }

    fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Release);
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        let timeout_ms = crate::clock::ms(timeout).unsigned_abs();
        loop {
            let idle_ms = self.now_ms().saturating_sub(self.last.load(Ordering::Acquire));
            if self.in_flight.load(Ordering::Acquire) == 0 && idle_ms >= timeout_ms {
                return;
            }
            // Busy: look again a whole timeout later; idle: when this idle spell would end.
            let wait = if self.in_flight.load(Ordering::Acquire) > 0 {
                timeout_ms
            } else {
                timeout_ms - idle_ms
            };
            tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
        }
    }
}

/// A request in flight, counted while it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: &Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        Busy(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why hyper refused a request before any exchange began, as counted in `/metrics`.
fn unparsed(error: &hyper::Error) -> Option<&'static str> {
    if error.is_parse_too_large() {
        Some("request_head_too_large")
    } else if error.is_parse() {
        Some("not_http")
    } else {
        None
    }
}

/// What a request whose exchange task failed is answered: a SCIM error the proxy made, so
/// marked with `scimtrail-error` like every other (`exchange::error_response`).
fn internal_error() -> Response<Full<Bytes>> {
    let error = scimtrail_scim::ScimError::new(500, None, "the proxy failed while handling this exchange");
    crate::exchange::error_response(&error, "internal_error")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Every answer the proxy makes itself is a SCIM error marked with `scimtrail-error`,
    /// the one it gives when an exchange's task fails included.
    #[tokio::test]
    async fn a_failed_exchange_task_is_answered_as_every_proxy_error_is() {
        let response = internal_error();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()[crate::ERROR_HEADER], "internal_error");
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], "application/scim+json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "500");
    }
}
