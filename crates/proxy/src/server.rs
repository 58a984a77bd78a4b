//! Listeners: accept loops for the proxy (plain or TLS) and the admin API, serving HTTP/1.1
//! and HTTP/2 with hyper-util's auto builder, and draining connections on shutdown.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Something that answers requests.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &'static str,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// How long shutdown waits for exchanges in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a listener takes on at once, so that memory is bounded by configuration, not by
/// traffic: past `max_connections` a connection waits in the kernel's backlog; past
/// `max_exchanges` a request waits for an exchange to end before it is handled. A connection
/// that sends no complete request head for `idle_timeout`, idle between requests included,
/// is closed: else idle clients could hold every slot.
#[derive(Debug, Clone)]
pub(crate) struct Capacity {
    idle_timeout: Duration,
    connections: Arc<Semaphore>,
    max_connections: usize,
    /// Connections open (the accept loop holds a slot ahead of the next one, so the
    /// semaphore alone would count one too many).
    open: Arc<AtomicUsize>,
    exchanges: Arc<Semaphore>,
    max_exchanges: usize,
    /// Requests that had to wait for a slot.
    waited: Arc<AtomicU64>,
}

impl Capacity {
    pub(crate) fn new(max_connections: usize, max_exchanges: usize, idle_timeout: Duration) -> Capacity {
        Capacity {
            idle_timeout,
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            open: Arc::new(AtomicUsize::new(0)),
            exchanges: Arc::new(Semaphore::new(max_exchanges)),
            max_exchanges,
            waited: Arc::new(AtomicU64::new(0)),
        }
    }

    /// (connections open, their limit, exchanges in flight, their limit, requests that waited).
    pub(crate) fn usage(&self) -> (usize, usize, usize, usize, u64) {
        (
            self.open.load(Ordering::Relaxed),
            self.max_connections,
            self.max_exchanges - self.exchanges.available_permits(),
            self.max_exchanges,
            self.waited.load(Ordering::Relaxed),
        )
    }
}

/// Accepts connections until `shutdown` turns true, then lets the open ones finish.
pub(crate) async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    capacity: Capacity,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without a timer hyper applies no timeout at all. HTTP/2 gets pings, which close a
    // connection whose peer is gone, not one that is idle and alive.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(capacity.idle_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    // Connection tasks, so that any still open after the drain timeout can be stopped.
    let mut connections = JoinSet::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    loop {
        // The semaphores are never closed: acquiring fails only when they are.
        let connection_slot = tokio::select! {
            slot = Arc::clone(&capacity.connections).acquire_owned() => slot.ok(),
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(%error, "Accepting a connection failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let connection_slot = (connection_slot, Open::new(&capacity.open));
                while connections.try_join_next().is_some() {}
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                let capacity = capacity.clone();
                let service = service_fn(move |request| {
                    let handler = Arc::clone(&handler);
                    let capacity = capacity.clone();
                    async move {
                        // A client that leaves while its request waits here starts nothing.
                        let slot = match Arc::clone(&capacity.exchanges).try_acquire_owned() {
                            Ok(slot) => Some(slot),
                            Err(_) => {
                                capacity.waited.fetch_add(1, Ordering::Relaxed);
                                Arc::clone(&capacity.exchanges).acquire_owned().await.ok()
                            }
                        };
                        // The exchange runs in its own task: if the client goes away, hyper
                        // drops this future, but the exchange still completes and is recorded.
                        let exchange = tokio::spawn(async move {
                            let response = handler.handle(request, peer, scheme).await;
                            drop(slot);
                            response
                        });
                        Ok::<_, Infallible>(exchange.await.unwrap_or_else(|error| {
                            tracing::error!(%error, "An exchange task failed.");
                            internal_error()
                        }))
                    }
                });
                match &tls {
                    None => {
                        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                        connections.spawn(async move {
                            let _slot = connection_slot;
                            if let Err(error) = connection.await {
                                tracing::debug!(%error, %peer, "Connection ended with an error.");
                            }
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        connections.spawn(async move {
                            let _slot = connection_slot;
                            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%error, %peer, "TLS handshake failed.");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out.");
                                    return;
                                }
                            };
                            let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
                            if let Err(error) = connection.await {
                                tracing::debug!(%error, %peer, "Connection ended with an error.");
                            }
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("Connections were still open after the drain timeout; closing them.");
    }
    connections.abort_all();
}

/// Counts a connection open while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(open))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn internal_error() -> Response<Full<Bytes>> {
    let error = scimtrail_scim::ScimError::new(500, None, "the proxy failed while handling this exchange");
    let mut response = Response::new(Full::new(Bytes::from(error.to_json().to_string())));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/scim+json"),
    );
    response
}

/// A TLS acceptor from PEM files, offering HTTP/2 and HTTP/1.1.
pub(crate) fn tls_acceptor(files: &crate::config::TlsFiles) -> Result<TlsAcceptor, String> {
    let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let cert_pem = read(&files.cert_path)?;
    let key_pem = read(&files.key_path)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", files.cert_path.display()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("{}: {e}", files.key_path.display()))?
        .ok_or_else(|| format!("{} holds no private key", files.key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not work together: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
