//! Starting the proxy: the fingerprint key agreed with the store, this instance's name taken
//! and what a previous run left marked, the listeners bound, the background tasks and the
//! servers spawned.

use crate::config::{IpNet, ProxyConfig};
use crate::{admin, capacity, fingerprint, instances, pruning, reconcile, server, tls_files, upstream};
use crate::{Proxy, Reloader, Running};
use scimtrail_store::Store;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The upstream client could not be built.
    #[error(transparent)]
    Client(#[from] upstream::ClientError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] scimtrail_store::StoreError),
    /// `max_buffered_bytes` cannot hold one exchange at its limits.
    #[error("{0}")]
    Buffers(String),
    /// The recorder's thread could not start.
    #[error("cannot start the recorder's thread: {0}")]
    Recorder(std::io::Error),
    /// The key credentials' fingerprints are made with is missing, unreadable, or not the
    /// one the store's other instances use.
    #[error("{0}")]
    FingerprintKey(String),
    /// Another live process holds this instance's name in the store.
    #[error("{0}")]
    InstanceNameInUse(String),
}

/// The key credentials' fingerprints are made with, agreed with every instance sharing the
/// store.
pub(crate) async fn agreed_key(config: &ProxyConfig, store: &Store) -> Result<fingerprint::Key, StartError> {
    let key = config.fingerprint_key.load().map_err(StartError::FingerprintKey)?;
    key.agree_with(store).await.map_err(StartError::FingerprintKey)?;
    Ok(key)
}

/// Starts the proxy and its admin listener.
pub async fn start(config: ProxyConfig, store: Store) -> Result<Running, StartError> {
    let key = agreed_key(&config, &store).await?;
    let (membership, cut_short, interrupted) = take_over(&config, &store).await?;
    let listener_cert = config
        .tls
        .as_ref()
        .map(tls_files::ListenerCert::load)
        .transpose()
        .map_err(StartError::Tls)?;
    let tls = listener_cert
        .as_ref()
        .map(tls_files::ListenerCert::acceptor)
        .transpose()
        .map_err(StartError::Tls)?;
    let bound = Bound::bind(&config).await?;
    let admin_settings = admin::AdminSettings::new(&config);
    let reloader = Reloader::new(&config, listener_cert);
    let (audit_store, audit_instance) = (store.clone(), config.instance.clone());
    let routes = config.routes.len();
    let timeouts = server::Timeouts {
        first_byte: config.first_byte_timeout,
        idle: config.idle_timeout,
        drain: config.drain,
    };
    let ready_grace = config.ready_grace;
    let stopping = Arc::new(AtomicBool::new(false));
    let trusted_proxies: Arc<[IpNet]> = Arc::from(config.trusted_proxies.clone());
    let client = upstream::client(config.ca_bundle.as_deref(), None)?;
    let (proxy, background) = Proxy::new(config, store.clone(), client, key)?;
    let capacity = proxy.capacity.clone();
    proxy.metrics.track(capacity.clone());
    for exchange in &cut_short {
        proxy
            .alerts
            .consider_interrupted(proxy.route_named(exchange.begun.route.as_deref()), exchange);
    }
    let proxy = Arc::new(proxy);
    let profiles = Arc::clone(&proxy.profiles);
    let metrics = Arc::clone(&proxy.metrics);
    let (proxy_addr, admin_addr) = (bound.proxy_addr, bound.admin_addr);
    let admin = Arc::new(admin::AdminService::new(Arc::new(admin::Admin {
        store,
        metrics: Arc::clone(&metrics),
        settings: admin_settings,
        routes,
        proxy: Arc::clone(&proxy),
        proxy_addr,
        stopping: Arc::clone(&stopping),
        // Health checks, scrapes and an operator or two.
        slots: Arc::new(tokio::sync::Semaphore::new(64)),
    })));
    let (shutdown, watcher) = watch::channel(false);
    spawn_background(&proxy, &membership, &watcher);
    let servers = vec![
        tokio::spawn(server::serve(
            server::Listener {
                tcp: bound.proxy,
                tls,
                handler: Arc::clone(&proxy),
                capacity,
                timeouts,
                trusted_proxies: Arc::clone(&trusted_proxies),
                metrics: Arc::clone(&metrics),
            },
            watcher.clone(),
        )),
        tokio::spawn(server::serve(
            server::Listener {
                tcp: bound.admin,
                tls: None,
                handler: admin,
                capacity: capacity::Capacity::new(64, 64, None),
                timeouts: server::Timeouts {
                    idle: Duration::from_secs(30),
                    ..timeouts
                },
                trusted_proxies,
                metrics,
            },
            watcher,
        )),
    ];
    tracing::info!(%proxy_addr, %admin_addr, "Proxy started.");
    Ok(Running {
        proxy_addr,
        admin_addr,
        interrupted,
        shutdown,
        stopping,
        ready_grace,
        servers,
        background,
        membership,
        reloader,
        profiles,
        store: audit_store,
        instance: audit_instance,
    })
}

/// This instance takes its name, then what a previous run under it left: its exchanges in
/// flight marked `interrupted` (how many), and the deactivations and deprovisions among them,
/// which may not have reached the application, to alert. The name first: a live process
/// holding it would otherwise lose its exchanges in flight.
async fn take_over(
    config: &ProxyConfig,
    store: &Store,
) -> Result<(instances::Membership, Vec<scimtrail_store::Exchange>, u64), StartError> {
    let membership = instances::join(store, &config.instance, config.heartbeat, config.instance_dead_after).await?;
    let cut_short = store.in_flight_deprovisions(&config.instance).await?;
    let interrupted = store.mark_interrupted(&config.instance).await?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "Exchanges left in flight by a previous run are now marked interrupted."
        );
    }
    Ok((membership, cut_short, interrupted))
}

/// The proxy and admin listeners, bound, with the addresses they took.
struct Bound {
    proxy: TcpListener,
    admin: TcpListener,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
}

impl Bound {
    async fn bind(config: &ProxyConfig) -> Result<Bound, StartError> {
        let bind = |addr: SocketAddr| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            Ok::<_, StartError>((listener, local))
        };
        let (proxy, proxy_addr) = bind(config.listen).await?;
        let (admin, admin_addr) = bind(config.admin_listen).await?;
        Ok(Bound {
            proxy,
            admin,
            proxy_addr,
            admin_addr,
        })
    }
}

/// What runs beside the listeners until shutdown: pruning, the intent follower, the
/// reconciliation schedules, the instance's heartbeat.
fn spawn_background(proxy: &Arc<Proxy>, membership: &instances::Membership, watcher: &watch::Receiver<bool>) {
    pruning::spawn(
        proxy.store.clone(),
        proxy.config.retention.clone(),
        proxy.config.prune_every,
        proxy.config.instance.clone(),
        Arc::clone(&proxy.metrics),
        watcher.clone(),
    );
    reconcile::spawn_intent_follower(
        proxy.store.clone(),
        proxy.config.instance.clone(),
        Arc::clone(&proxy.metrics),
        watcher.clone(),
    );
    reconcile::spawn_schedules(Arc::clone(proxy), watcher.clone());
    membership.spawn(Arc::clone(proxy), watcher.clone());
}
