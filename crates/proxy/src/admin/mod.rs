//! The admin listener: health, readiness, metrics, the exchanges API (list, one, export,
//! replay), erasures, the audit, and the operator's web UI (`/ui/`, see `crate::ui`). It runs
//! on its own address (loopback by default), never on the proxy port.
//!
//! Routing is axum's [`Router`], served by our own hyper server (`server.rs`: its limits,
//! timeouts and graceful shutdown are the proxy listener's too). The files:
//! - `access.rs`: who may use `/api` and `/ui` (token, session, CSRF, `Host`, `Origin`);
//! - `api.rs`: the JSON API's handlers;
//! - `params.rs`: the API's query strings (the CLI reads its filters with the same code).

mod access;
pub(crate) mod api;
mod params;

pub(crate) use access::{cleared_cookie, session_cookie, Access, AdminSettings, Session};
pub use params::{list_query, parse_time};

use crate::metrics::Metrics;
use crate::server::{CallerGone, Handler};
use crate::Proxy;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use scimtrail_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::Service;

/// What every admin handler reads.
pub(crate) struct Admin {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) settings: AdminSettings,
    pub(crate) routes: usize,
    /// Replays run through the serving proxy, recorded like any exchange.
    pub(crate) proxy: Arc<Proxy>,
    /// Where the proxy listens (the UI's curl commands are sent there).
    pub(crate) proxy_addr: SocketAddr,
    /// Set once the instance is stopping: `/readyz` says unready.
    pub(crate) stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Requests handled at once.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
}

/// Where the request came from, as the listener saw it (for the audit).
#[derive(Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl Peer {
    /// The peer `AdminService::handle` put in the request (an unspecified address if none).
    pub(crate) fn of<B>(request: &http::Request<B>) -> Peer {
        request
            .extensions()
            .get::<Peer>()
            .copied()
            .unwrap_or(Peer(([0, 0, 0, 0], 0).into()))
    }
}

/// Whether the listener speaks TLS (session cookies are then `Secure`).
#[derive(Clone, Copy)]
pub(crate) struct OverTls(pub(crate) bool);

/// The admin listener's handler: the router, built once.
pub(crate) struct AdminService {
    router: Router,
}

impl AdminService {
    pub(crate) fn new(admin: Arc<Admin>) -> AdminService {
        AdminService { router: router(admin) }
    }
}

/// Every path the admin listener serves. `/api` and `/ui` pass `access.rs` first; health,
/// readiness and metrics are open (a load balancer and Prometheus ask them).
fn router(admin: Arc<Admin>) -> Router {
    let api = Router::new()
        .route("/api/v1/exchanges", get(api::list))
        .route("/api/v1/exchanges/export", get(api::export))
        .route("/api/v1/exchanges/{id}", get(api::get))
        .route("/api/v1/exchanges/{id}/replay", post(api::replay_one))
        .route("/api/v1/replays", post(api::replay_matching))
        .route("/api/v1/erasures", post(api::erase))
        .route("/api/v1/reconciliations", post(api::reconcile))
        .route("/api/v1/reconciliations/{id}", get(api::reconciliation))
        .route("/api/v1/reconciliations/{id}/repairs", get(api::reconciliation_repairs))
        .route("/api/v1/audit", get(api::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&admin),
            access::api_guard,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::ready))
        .route("/metrics", get(api::metrics))
        .merge(api)
        .merge(crate::ui::router(Arc::clone(&admin)))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&admin),
            access::take_slot,
        ))
        .with_state(admin)
}

impl Handler for AdminService {
    type Body = AdminBody;

    async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &'static str,
        _caller: CallerGone,
    ) -> Response<AdminBody> {
        request.extensions_mut().insert(Peer(peer));
        request.extensions_mut().insert(OverTls(scheme == "https"));
        let answer = self.router.clone().call(request.map(axum::body::Body::new)).await;
        match answer {
            Ok(response) => response.map(AdminBody),
            Err(never) => match never {},
        }
    }
}

/// An admin answer's body: whole, or an export streamed as it is read from the store.
pub(crate) struct AdminBody(axum::body::Body);

impl From<Full<Bytes>> for AdminBody {
    fn from(body: Full<Bytes>) -> AdminBody {
        AdminBody(axum::body::Body::new(body))
    }
}

impl hyper::body::Body for AdminBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
}
