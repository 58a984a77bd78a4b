//! The composition root: reads and validates the configuration (file, flags, environment),
//! connects and migrates the store, and starts the proxy. The binary and the integration
//! tests start scimtrail through the same [`start`].
//!
//! # Invariants
//! - Secrets come from environment variables named in the file, never from the file itself,
//!   and are held as [`scimtrail_proxy::Secret`], whose `Debug` hides them.
//! - Unknown keys are refused with their name: a typo must fail loudly.

pub mod config;
pub mod environment;
pub mod rules_dir;

pub use config::{Overrides, Settings};
pub use environment::Environment;

use scimtrail_proxy::Running;
use scimtrail_store::Store;

/// Why scimtrail could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store failed.
    #[error("store {url}: {source}")]
    Store {
        /// The store URL (without credentials).
        url: String,
        /// Why.
        source: scimtrail_store::StoreError,
    },
    /// The proxy failed to start.
    #[error(transparent)]
    Start(#[from] scimtrail_proxy::StartError),
}

/// Connects to the store (creating and migrating it) and starts the proxy.
pub async fn start(settings: &Settings) -> Result<(Running, Store), AppError> {
    let store = connect_with(&settings.store_url, settings.durability).await?;
    let failed = |source| AppError::Store {
        url: config::without_password(&settings.store_url),
        source,
    };
    let store = store
        .with_sync_interval(settings.sync_interval)
        .with_journal()
        .map_err(failed)?;
    let store = match &settings.spool_dir {
        Some(dir) => store.with_spool(dir).await.map_err(failed)?,
        None => store,
    };
    let running = scimtrail_proxy::start(settings.proxy.clone(), store.clone()).await?;
    Ok((running, store))
}

/// What `serve` does on SIGHUP: the file-backed secrets read again and, with a `[rules] dir`,
/// its rule files read and loaded again, then put in force whole (or, when any file fails,
/// or a route's profile would be gone, none of them: the profiles in force stay). Returns
/// the report's lines; the proxy logs and audits the reload.
pub async fn reload(running: &Running, settings: &Settings) -> Vec<String> {
    let rules = match &settings.rules_dir {
        None => None,
        Some(dir) => {
            let dir = dir.clone();
            // Files read and test cases run: off the runtime's workers.
            let loaded = tokio::task::spawn_blocking(move || rules_dir::load(&dir))
                .await
                .map_err(|error| format!("the rules were not read: {error}"))
                .and_then(|loaded| loaded.map_err(|error| error.to_string()));
            if let Ok(catalog) = &loaded {
                for warning in catalog.warnings() {
                    tracing::warn!(%warning, "The reloaded rules allow this.");
                }
            }
            Some(loaded)
        }
    };
    running.reload(rules).await
}

/// Connects to a store and applies its migrations.
pub async fn connect(url: &str) -> Result<Store, AppError> {
    connect_with(url, scimtrail_store::Durability::Power).await
}

/// Connects, choosing the durability writes are committed at, and applies the migrations.
pub async fn connect_with(url: &str, durability: scimtrail_store::Durability) -> Result<Store, AppError> {
    let failed = |source| AppError::Store {
        url: config::without_password(url),
        source,
    };
    let store = Store::connect_with(url, durability).await.map_err(failed)?;
    store.migrate().await.map_err(failed)?;
    Ok(store)
}
