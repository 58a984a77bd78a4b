//! What serving instances do for reconcile in the background: keep the intent folded and the
//! drift gauges current, and run each route's scheduled reconciliation (`[route.reconcile]
//! every`), one instance at a time.

use crate::clock::now_ms;

/// How often a serving instance folds new writes into the intent and reads the latest runs'
/// counts for `/metrics` (a run from the CLI or another instance among them).
const FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the intent lease is held: an instance that died holding it frees it after this.
const INTENT_LEASE_MS: i64 = 60_000;

/// Keeps the intent folded and the drift gauges current until `shutdown` turns true: one
/// instance at a time folds (the `intent` lease; folding twice would change nothing, but
/// costs the store).
pub(crate) fn spawn_intent_follower(
    store: scimtrail_store::Store,
    holder: String,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FOLD_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let now = now_ms();
            let lease = store
                .take_lease(scimtrail_store::Lease::Intent, &holder, now, now + INTENT_LEASE_MS)
                .await;
            if matches!(lease, Ok(Ok(()))) {
                if let Err(error) = store.fold_pending_intent(500).await {
                    tracing::warn!(%error, "Folding recorded writes into the intent failed; the next round tries again.");
                }
            }
            match store.latest_reconciliations().await {
                Ok(runs) => {
                    for run in runs {
                        metrics.set_drift(&run.route, &run.counts);
                    }
                }
                Err(error) => tracing::debug!(%error, "Reading the latest reconciliations failed."),
            }
        }
    });
}

/// How often a serving instance looks whether a route's scheduled reconciliation is due.
const SCHEDULE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the scheduled-reconciliation lease is held: past it, another instance may run
/// the routes that are due (a run that takes longer may then meet a second one: both are
/// reports, neither repairs).
const SCHEDULE_LEASE_MS: i64 = 30 * 60_000;

/// Runs each route's reconciliation when `[route.reconcile] every` has passed since the latest
/// run of it began (whoever began it: a run from the CLI or the API counts), until
/// `shutdown` turns true. One instance at a time (the `reconcile` lease); a run repairs
/// nothing — an operator asks for that.
pub(crate) fn spawn_schedules(proxy: std::sync::Arc<crate::Proxy>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let scheduled: Vec<(String, i64)> = proxy
        .config
        .routes
        .iter()
        .filter_map(|route| {
            let every = crate::clock::ms(route.reconcile_every?);
            Some((route.name.clone(), every))
        })
        .collect();
    if scheduled.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let holder = proxy.config.instance.clone();
        let caller = crate::audit::Caller::instance(&holder, "[route.reconcile] every");
        loop {
            tokio::select! {
                () = tokio::time::sleep(SCHEDULE_CHECK_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let mut due = Vec::new();
            for (route, every) in &scheduled {
                match proxy.store.last_reconciliation_started(route).await {
                    Ok(last) if last.is_none_or(|last| last.saturating_add(*every) <= now_ms()) => due.push(route),
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, route, "Reading when the route was last reconciled failed."),
                }
            }
            if due.is_empty() {
                continue;
            }
            let now = now_ms();
            let lease = proxy
                .store
                .take_lease(scimtrail_store::Lease::Reconcile, &holder, now, now + SCHEDULE_LEASE_MS)
                .await;
            if !matches!(lease, Ok(Ok(()))) {
                continue;
            }
            for route in due {
                match proxy.reconcile(route, &[], super::Repairing::No, &caller).await {
                    Ok(report) => {
                        tracing::info!(route, run = %report.run.id, counts = ?report.run.counts, "Scheduled reconciliation done.")
                    }
                    Err(error) => {
                        tracing::warn!(%error, route, "A scheduled reconciliation failed; it runs again when due.")
                    }
                }
            }
            if let Err(error) = proxy
                .store
                .release_lease(scimtrail_store::Lease::Reconcile, &holder)
                .await
            {
                tracing::debug!(%error, "Releasing the reconcile lease failed; it lapses on its own.");
            }
        }
    });
}
