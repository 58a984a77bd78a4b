//! The store kept within its retention policy while the proxy serves: a prune every
//! `[retention] prune_every` (the first a little after start), one instance at a time under
//! the store's prune lease, never while a replay run is unfinished (`Store::prune_once`).
//! What it deleted, and the store's size, go to `/metrics`.

use crate::audit::{self, Caller};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use scimtrail_store::{Retention, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The first prune after start comes after this, or `prune_every` if sooner.
const FIRST_AFTER: Duration = Duration::from_secs(30);

/// Prunes in the background until `shutdown` turns true.
pub(crate) fn spawn(
    store: Store,
    retention: Retention,
    every: Duration,
    holder: String,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut wait = every.min(FIRST_AFTER);
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            prune(&store, &retention, &holder, &metrics).await;
            wait = every;
        }
    });
}

/// One prune, audited: `holder` is the instance's name.
async fn prune(store: &Store, retention: &Retention, holder: &str, metrics: &Metrics) {
    let now = now_ms();
    let warn = |size: &scimtrail_store::StoreSize| {
        metrics.pruned_failures_for_size();
        tracing::warn!(
            bytes = size.bytes,
            max_store_bytes = retention.max_store_bytes,
            "The store is over [retention] max_store_bytes with no success left to delete: the oldest failures go now."
        );
    };
    match store.prune_once(holder, retention, now, false, warn).await {
        Ok(Ok(report)) => {
            metrics.pruned(&report);
            // A round that deleted nothing is no action on anyone's records: not audited, or
            // the audit would grow by an entry every `prune_every` for nothing.
            if report.total() > 0 {
                let caller = Caller::instance(holder, "scheduled by [retention] prune_every");
                audit::record(store, &caller, holder, "prune", audit::prune(&report, false)).await;
                tracing::info!(exchanges = ?report.exchanges, children = report.children, snapshots = report.snapshots, "Pruned the store by its retention policy.");
            }
        }
        Ok(Err(why)) => tracing::debug!(why, "Pruning skipped this round."),
        Err(error) => tracing::warn!(%error, "Pruning the store failed; the next round tries again."),
    }
    match store.size().await {
        Ok(size) => metrics.set_store_size(size, now),
        Err(error) => tracing::warn!(%error, "The store's size could not be read."),
    }
}
