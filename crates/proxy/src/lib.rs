//! The recording SCIM reverse proxy.
//!
//! # Brief overview
//! - [`start`] binds the proxy and admin listeners, marks this instance's exchanges left in
//!   flight as `interrupted`, starts the [`Recorder`]'s writer thread, and returns [`Running`].
//! - `exchange/` is the life of one exchange, phase by phase: start there.
//! - `scimtrail_analysis::classify` reads what an exchange is (resource, operation,
//!   lifecycle, userName).
//! - Normalisation is `scimtrail-rules`, per route; `state.rs` reads a resource for the
//!   stateful rules.
//! - `scimtrail_analysis::findings` reads each answer against what was sent (operations that
//!   did not take effect, wrong lookups, non-SCIM errors); `shapes.rs` keeps each route's
//!   request shapes for `shape_drift`.
//! - [`redact`] keeps secrets out of everything recorded; [`fingerprint`] makes what it keeps
//!   of a credential, under the installation's key.
//! - [`recorder`] group-commits records; `durable` mode holds the request until its record
//!   is committed, and the response until its completion is.
//! - `admin.rs`: `/healthz`, `/readyz`, `/metrics`, `/api/v1/exchanges`.
//!
//! # Invariants
//! - Every request that reaches the proxy is recorded, the proxy's own refusals included,
//!   and every answer the proxy makes itself is a SCIM error body.
//! - Nothing is recorded before it is redacted: headers keep a fingerprint, passwords are gone.
//! - In durable mode no response is released before its record is committed; a request whose
//!   record cannot be written is refused (fail closed), never forwarded unrecorded.
//! - No automatic retries: a SCIM write is not idempotent; re-sending is replay's job. (The
//!   several requests one IdP request may become — R16's parts, R4's pages — are sent once
//!   each, in order, stopping at the first failure.)

pub mod admin;
mod alerts;
pub mod audit;
mod buffers;
mod capacity;
mod clock;
pub mod config;
mod connector;
mod content_coding;
pub mod erasure;
mod exchange;
pub mod export;
pub mod fingerprint;
mod first_bytes;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod instances;
pub mod metrics;
mod names;
pub mod pacing;
mod path_safety;
mod profiles;
mod pruning;
mod read_layer;
pub mod reconcile;
pub mod recorder;
pub mod redact;
mod refusals;
pub mod replay;
mod request_line;
mod secret;
mod server;
mod shapes;
mod start;
mod state;
mod synthetic;
mod tls_files;
mod ui;
pub mod upstream;

pub use admin::{list_query, parse_time};
pub use config::{IpNet, ProxyConfig, Route, Secret, SecretError, SecretSource, TlsFiles, UpstreamAuth, Webhook};
pub use exchange::{ERROR_HEADER, EXCHANGE_ID_HEADER};
pub use reconcile::{ReconcileError, ReconcileReport, Repairing};
pub use recorder::{RecordMode, Recorder};
pub use replay::{ReplayError, ReplayItem, ReplayReport, RulesChanged, Selection};
pub use start::{start, StartError};
pub use synthetic::SyntheticAnswer;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use metrics::Metrics;
use redact::Redactor;
use scimtrail_scim::redact::Redaction;
use scimtrail_store::Store;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use upstream::Upstream;

/// The proxy: routes, the upstream client, the recorder.
pub struct Proxy {
    config: ProxyConfig,
    upstream: Upstream,
    capacity: capacity::Capacity,
    /// What exchanges from the listener may buffer between them (`buffers.rs`).
    buffers: buffers::Buffers,
    recorder: Recorder,
    redactor: Redactor,
    /// What a request no route serves never has stored: what any route redacts.
    unrouted_redaction: Redaction,
    metrics: Arc<Metrics>,
    store: Store,
    shapes: shapes::ShapeBook,
    /// What this instance last wrote to `resource_names`.
    names_written: names::NamesWritten,
    alerts: alerts::Alerts,
    /// Refusals being counted into one record (`refusals.rs`).
    repeats: Arc<refusals::Repeats>,
    /// The IdP profiles in force, which a reload swaps (`profiles.rs`).
    profiles: Arc<profiles::ProfileBook>,
}

impl server::Handler for Proxy {
    type Body = Full<Bytes>;

    /// An IdP's request from the listener: admission takes its slots (`admit.rs`).
    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
        scheme: &'static str,
        caller: server::CallerGone,
    ) -> Response<Full<Bytes>> {
        let origin = exchange::Origin { peer, scheme };
        // Its requests to the application wait in pacing queues no longer than its client does.
        let mut patience = pacing::Patience::new(caller);
        self.run_exchange(request, origin, exchange::Link::default(), &mut patience)
            .await
            .response
    }
}

/// Why a buffer budget is refused: it must hold one request and one answer at their limits.
pub fn buffered_too_small(config: &ProxyConfig) -> String {
    format!(
        "[listen] max_buffered_bytes = {} cannot hold one exchange at its limits: at least [record] max_body_bytes + max_response_bytes = {}",
        config.max_buffered_bytes,
        config.max_body_bytes.saturating_add(config.max_response_bytes)
    )
}

/// A running proxy.
#[derive(Debug)]
pub struct Running {
    /// Where the proxy listens.
    pub proxy_addr: SocketAddr,
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// How many exchanges a previous run left in flight (now `interrupted`).
    pub interrupted: u64,
    shutdown: watch::Sender<bool>,
    /// Set when a stop begins: `/readyz` then says unready.
    stopping: Arc<AtomicBool>,
    ready_grace: Duration,
    servers: Vec<JoinHandle<()>>,
    background: Background,
    membership: instances::Membership,
    reloader: Reloader,
    /// The IdP profiles in force, shared with the proxy.
    profiles: Arc<profiles::ProfileBook>,
    /// Where reloads are audited, as this instance.
    store: Store,
    instance: String,
}

impl Running {
    /// Reads every file-backed secret again (`serve` does on SIGHUP): the IdP tokens, the
    /// admin token, the upstream credentials, the webhook tokens, and the listener's TLS
    /// certificate (connections already open keep theirs). A secret or certificate that cannot
    /// be read keeps its value; each line of the report says which changed or failed.
    /// Audited (action `reload`).
    pub async fn reload_secrets(&self) -> Vec<String> {
        self.reload(None).await
    }

    /// What SIGHUP does: the secrets read again (see [`Running::reload_secrets`]) and, when
    /// the operator's rule files were read again (`rules`: the catalog they make, or why it
    /// was refused), that catalog put in force whole — unless it was refused, or lacks a
    /// profile a route uses: then the profiles in force stay, and the error is logged and
    /// reported. Exchanges in flight keep the profile they began with; new ones take the new
    /// one. Audited as one `reload`, with each operator profile's version before and after.
    pub async fn reload(&self, rules: Option<Result<scimtrail_rules::Catalog, String>>) -> Vec<String> {
        let mut report = self.reloader.reload();
        let mut detail = serde_json::json!({"secrets": report});
        if let Some(rules) = rules {
            let swapped = rules.and_then(|catalog| self.profiles.swap(catalog).map_err(|refused| refused.to_string()));
            match swapped {
                Ok(changes) => {
                    for change in &changes {
                        let line = change.line();
                        match change.changed() {
                            true => {
                                tracing::info!(%line, "Rules reloaded: this profile changed; new exchanges use it.")
                            }
                            false => tracing::debug!(%line, "Rules reloaded: this profile is unchanged."),
                        }
                        report.push(format!("rules: {line}"));
                    }
                    if changes.is_empty() {
                        report.push("rules: reloaded; no operator profiles".to_owned());
                    }
                    detail["rules"] = serde_json::json!({
                        "result": "reloaded",
                        "profiles": changes.iter().map(profiles::Changed::to_json).collect::<Vec<_>>(),
                    });
                }
                Err(error) => {
                    tracing::error!(%error, "Rules not reloaded; the profiles in force stay.");
                    report.push(format!("rules: kept the profiles in force: {error}"));
                    detail["rules"] = serde_json::json!({"result": "kept", "error": error});
                }
            }
        }
        let caller = audit::Caller::instance(&self.instance, "SIGHUP");
        audit::record(&self.store, &caller, &self.instance, "reload", detail).await;
        report
    }

    /// The version of the rules each route's new exchanges use now: `(route, profile,
    /// rules_version)`.
    pub fn rules_versions(&self) -> Vec<(String, String, String)> {
        let catalog = self.profiles.catalog();
        self.profiles
            .routes()
            .iter()
            .filter_map(|(route, idp)| {
                let profile = catalog.get(idp)?;
                Some((route.clone(), idp.clone(), profile.version().to_owned()))
            })
            .collect()
    }

    /// What `serve` does on SIGTERM, for a rollout behind a load balancer: `/readyz` says
    /// unready for `[listen] ready_grace_secs` while both listeners still serve, so that a
    /// balancer polling it stops sending new requests here; then [`Running::shutdown`].
    pub async fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        if !self.ready_grace.is_zero() {
            tracing::info!(
                grace_secs = self.ready_grace.as_secs(),
                "Stopping: /readyz says unready; still serving until the grace ends."
            );
            tokio::time::sleep(self.ready_grace).await;
        }
        self.shutdown().await;
    }

    /// Stops accepting, drains exchanges in flight (for `[listen] drain_secs` at most),
    /// flushes the recorder, says in the store that this instance stopped, and returns.
    pub async fn shutdown(self) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        // Every handle to the proxy is gone with the servers: the writer drains and ends, and
        // the alerts queued are delivered.
        self.background.finish().await;
        self.membership.leave(&self.store).await;
    }
}

impl Proxy {
    /// The proxy without its listeners, and what finishes once it is dropped: its recorder's
    /// writer (the queue drained) and its alerts' delivery.
    fn new(
        config: ProxyConfig,
        store: Store,
        client: upstream::UpstreamClient,
        key: fingerprint::Key,
    ) -> Result<(Proxy, Background), StartError> {
        let metrics = Arc::new(Metrics::default());
        metrics.watch_store(store.clone());
        let (recorder, writer) = Recorder::spawn(
            store.clone(),
            config.record_mode,
            config.queue_capacity,
            config.queue_max_bytes,
            config.max_batch,
            Arc::clone(&metrics),
        )
        .map_err(StartError::Recorder)?;
        // A route that presents a client certificate has a client (and a pool) of its own.
        let mut route_clients = std::collections::HashMap::new();
        for route in &config.routes {
            if let Some(identity) = &route.client_identity {
                let client = upstream::client(config.ca_bundle.as_deref(), Some(identity))?;
                route_clients.insert(route.name.clone(), client);
            }
        }
        let upstream = Upstream::new(
            client.clone(),
            route_clients,
            &config.routes,
            config.max_response_bytes,
            Arc::clone(&metrics),
        );
        let per_client = config.max_connections_per_client.map(capacity::PerClient::new);
        let capacity = capacity::Capacity::new(config.max_connections, config.max_exchanges, per_client);
        let buffers = buffers::Buffers::new(
            config.max_buffered_bytes,
            config.max_body_bytes,
            config.max_response_bytes,
            config.body_timeout,
        )
        .ok_or_else(|| StartError::Buffers(buffered_too_small(&config)))?;
        // A custom upstream credential header is a secret too, whatever `redact_headers` says.
        let mut secret_headers = config.redact_headers.clone();
        secret_headers.extend(config.routes.iter().filter_map(|r| match &r.upstream_auth {
            Some(UpstreamAuth::Header { name, .. }) => Some(name.clone()),
            _ => None,
        }));
        let redactor = Redactor::new(&secret_headers, key);
        let (alerts, delivery) = alerts::Alerts::spawn(client.clone(), Arc::clone(&metrics));
        let proxy_store = store.clone();
        let unrouted_redaction = Redaction::union(config.routes.iter().map(|r| &r.redaction));
        let profiles = Arc::new(profiles::ProfileBook::new(Arc::clone(&config.profiles), &config.routes));
        let proxy = Proxy {
            config,
            upstream,
            capacity,
            buffers,
            recorder,
            redactor,
            unrouted_redaction,
            metrics,
            store,
            shapes: shapes::ShapeBook::default(),
            names_written: names::NamesWritten::default(),
            alerts,
            repeats: Arc::default(),
            profiles,
        };
        Ok((
            proxy,
            Background {
                writer,
                delivery,
                store: proxy_store,
            },
        ))
    }
}

/// The secrets of a running proxy, each named for the report, to read again (SIGHUP). A
/// clone of a [`Secret`] shares its value, so what is read here is what the proxy uses.
#[derive(Debug, Clone)]
struct Reloader {
    secrets: Vec<(String, Secret)>,
    /// The proxy listener's certificate, read again with the secrets.
    listener_cert: Option<Arc<tls_files::ListenerCert>>,
}

impl Reloader {
    fn new(config: &ProxyConfig, listener_cert: Option<Arc<tls_files::ListenerCert>>) -> Reloader {
        let mut secrets: Vec<(String, Secret)> = Vec::new();
        if let Some(token) = &config.admin_token {
            secrets.push(("[admin] token".to_owned(), token.clone()));
        }
        for route in &config.routes {
            let name = &route.name;
            if let Some(token) = &route.idp_token {
                secrets.push((format!("route {name} idp token"), token.clone()));
            }
            match &route.upstream_auth {
                Some(UpstreamAuth::Bearer(token)) => {
                    secrets.push((format!("route {name} upstream bearer token"), token.clone()))
                }
                Some(UpstreamAuth::Basic { password, .. }) => {
                    secrets.push((format!("route {name} upstream password"), password.clone()))
                }
                Some(UpstreamAuth::Header { value, .. }) => {
                    secrets.push((format!("route {name} upstream header value"), value.clone()))
                }
                Some(UpstreamAuth::ClientCredentials(credentials)) => secrets.push((
                    format!("route {name} upstream OAuth client secret"),
                    credentials.client_secret.clone(),
                )),
                None => {}
            }
            if let Some(token) = route.webhook.as_ref().and_then(|hook| hook.bearer_token.as_ref()) {
                secrets.push((format!("route {name} webhook token"), token.clone()));
            }
        }
        Reloader { secrets, listener_cert }
    }

    fn reload(&self) -> Vec<String> {
        let certificate = self.listener_cert.iter().map(|cert| {
            let what = "[listen] tls certificate";
            match cert.reload() {
                Ok(true) => {
                    tracing::info!(source = %cert.source(), "Listener certificate reloaded: changed; new handshakes get it.");
                    format!("{what}: changed ({})", cert.source())
                }
                Ok(false) => format!("{what}: unchanged ({})", cert.source()),
                Err(error) => {
                    tracing::error!(%error, "Listener certificate not reloaded; the previous one stays in force.");
                    format!("{what}: kept the previous one: {error}")
                }
            }
        });
        let certificate: Vec<String> = certificate.collect();
        let secrets = self
            .secrets
            .iter()
            .map(|(what, secret)| match secret.reload() {
                Ok(true) => {
                    tracing::info!(secret = %what, source = %secret.source(), rotating = secret.rotating(), "Secret reloaded: changed.");
                    format!("{what}: changed ({})", secret.source())
                }
                Ok(false) => format!("{what}: unchanged ({})", secret.source()),
                Err(error) => {
                    tracing::error!(secret = %what, %error, "Secret not reloaded; its previous value stays in force.");
                    format!("{what}: kept its previous value: {error}")
                }
            });
        secrets.chain(certificate).collect()
    }
}

/// How long a shutdown waits for queued alerts.
const ALERTS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// What keeps running after the proxy is dropped, until it is done.
#[derive(Debug)]
struct Background {
    writer: tokio::sync::oneshot::Receiver<()>,
    delivery: JoinHandle<()>,
    store: Store,
}

impl Background {
    /// Waits for the writer to drain, and for the alerts queued to be delivered, for
    /// `ALERTS_DEADLINE` at most: a webhook that is down must not hold a shutdown.
    async fn finish(self) {
        let _ = self.writer.await;
        // What the writer journaled goes into the database before the process ends.
        self.store.close().await;
        let mut delivery = self.delivery;
        if tokio::time::timeout(ALERTS_DEADLINE, &mut delivery).await.is_err() {
            tracing::error!("Alerts still undelivered at shutdown were given up on.");
            delivery.abort();
        }
    }
}

/// A proxy without listeners, for `scimtrail replay`: it records its replays like `serve`
/// does, durably, under an instance name of its own.
pub struct Replayer {
    proxy: Proxy,
    background: Background,
}

impl Replayer {
    /// Builds the proxy of `config` over `store`; replays a previous run left in flight
    /// become `interrupted` (the next run decides from them).
    pub async fn new(mut config: ProxyConfig, store: Store) -> Result<Replayer, StartError> {
        config.instance = format!("{}/replay", config.instance);
        config.record_mode = RecordMode::Durable;
        store.mark_interrupted(&config.instance).await?;
        let key = start::agreed_key(&config, &store).await?;
        let client = upstream::client(config.ca_bundle.as_deref(), None)?;
        let (proxy, background) = Proxy::new(config, store, client, key)?;
        Ok(Replayer { proxy, background })
    }

    /// Replays the selection (see [`Proxy::replay`]), audited as `caller`'s.
    pub async fn replay(
        &self,
        selection: Selection,
        dry_run: bool,
        caller: &audit::Caller,
    ) -> Result<ReplayReport, ReplayError> {
        self.proxy.replay(selection, dry_run, caller).await
    }

    /// Reconciles a route, and repairs its drift as `repairing` says (see
    /// [`Proxy::reconcile`]), recorded and audited as `caller`'s.
    pub async fn reconcile(
        &self,
        route: &str,
        resource_types: &[String],
        repairing: Repairing,
        caller: &audit::Caller,
    ) -> Result<ReconcileReport, ReconcileError> {
        self.proxy.reconcile(route, resource_types, repairing, caller).await
    }

    /// Sends one request in process through the route that serves `target` (a path with
    /// the route's prefix, and its query), recorded as synthetic traffic made by `made_by`
    /// (`verify`): no intent, no alert, out of the default listings.
    pub async fn send_synthetic(
        &self,
        made_by: &str,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: bytes::Bytes,
    ) -> Result<SyntheticAnswer, String> {
        self.proxy.send_synthetic(made_by, method, target, headers, body).await
    }

    /// Flushes what is left to record and to alert.
    pub async fn finish(self) {
        drop(self.proxy);
        self.background.finish().await;
    }
}
