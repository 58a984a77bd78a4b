//! This instance among the others that share its store.
//!
//! - **Joining**: an instance takes its name in the store at start (`join`). A name whose
//!   holder still heartbeats belongs to a live process — two instances configured with one
//!   `SCIMTRAIL_INSTANCE` — and the start is refused: it would mark the live one's exchanges
//!   interrupted. A name whose heartbeat is merely recent (a crash a moment ago) is watched
//!   for one heartbeat first.
//! - **Heartbeats and reaping**: every `heartbeat` the instance writes its heartbeat, then
//!   claims any instance silent for `instance_dead_after` and marks that instance's exchanges
//!   left in flight `interrupted` (`reap`), alerting the deprovisions among them; each silent
//!   instance is claimed by one survivor only. An operator can reap a silent or stopped
//!   instance by name (`scimtrail instances reap`), never a live one.
//! - **Leaving**: a clean stop says so, after the drain.

use crate::audit::{self, Caller};
use crate::clock::{ms, now_ms};
use crate::{Proxy, StartError};
use scimtrail_store::{Exchange, InstanceRecord, InstanceState, Store, StoreError};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// This process's hold on its instance name.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) name: String,
    run_id: String,
    heartbeat: Duration,
    dead_after: Duration,
}

/// What reaping one instance did.
#[derive(Debug)]
pub struct Reaped {
    /// Its exchanges marked `interrupted`.
    pub interrupted: u64,
    /// The deactivations and deprovisions among them: they may or may not have reached the
    /// application.
    pub deprovisions: Vec<Exchange>,
}

/// Takes `name` in the store for this process, unless a live process holds it.
pub(crate) async fn join(
    store: &Store,
    name: &str,
    heartbeat: Duration,
    dead_after: Duration,
) -> Result<Membership, StartError> {
    let dead_after_ms = ms(dead_after);
    if let Some(held) = store.instance(name).await? {
        if held.state(now_ms(), dead_after_ms) == InstanceState::Live && !gone_from_this_host(&held) {
            // A recent heartbeat: this name's previous process crashed a moment ago, or
            // another process runs under it. Only the second keeps heartbeating.
            tracing::info!(
                instance = name,
                host = held.host,
                pid = held.pid,
                "The instance name had a recent heartbeat; watching it for one heartbeat before taking it."
            );
            tokio::time::sleep(heartbeat + Duration::from_secs(1)).await;
            if let Some(now) = store.instance(name).await? {
                if now.run_id == held.run_id && now.heartbeat_at_ms > held.heartbeat_at_ms {
                    return Err(StartError::InstanceNameInUse(format!(
                        "instance name \"{name}\" is held by a live process (host {}, pid {}, started {}): give each instance its own SCIMTRAIL_INSTANCE",
                        now.host,
                        now.pid,
                        scimtrail_store::rfc3339(now.started_at_ms)
                    )));
                }
            }
        }
    }
    let now = now_ms();
    let membership = Membership {
        name: name.to_owned(),
        run_id: uuid::Uuid::now_v7().to_string(),
        heartbeat,
        dead_after,
    };
    store
        .register_instance(&InstanceRecord {
            name: name.to_owned(),
            run_id: membership.run_id.clone(),
            host: crate::config::hostname(),
            pid: i64::from(std::process::id()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: now,
            heartbeat_at_ms: now,
            stopped_at_ms: None,
            reaped_at_ms: None,
            reaped_by: None,
        })
        .await?;
    Ok(membership)
}

impl Membership {
    /// Heartbeats and reaps until `shutdown` turns true.
    pub(crate) fn spawn(&self, proxy: Arc<Proxy>, mut shutdown: watch::Receiver<bool>) {
        let membership = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(membership.heartbeat) => {}
                    _ = shutdown.changed() => return,
                }
                if *shutdown.borrow() {
                    return;
                }
                membership.beat(&proxy).await;
            }
        });
    }

    /// One heartbeat, and the reaping of whoever fell silent.
    async fn beat(&self, proxy: &Proxy) {
        match proxy.store.heartbeat(&self.name, &self.run_id, now_ms()).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                instance = self.name,
                "Another process has taken this instance's name in the store: give each instance its own SCIMTRAIL_INSTANCE."
            ),
            // The store is away: survivors may reap this instance if it stays away for the
            // bound; its completions, once written, overwrite `interrupted`.
            Err(error) => tracing::warn!(%error, "The instance's heartbeat could not be written."),
        }
        let silent = match proxy
            .store
            .claim_silent_instances(&self.name, now_ms(), ms(self.dead_after))
            .await
        {
            Ok(silent) => silent,
            Err(error) => {
                tracing::warn!(%error, "Looking for silent instances failed; the next heartbeat tries again.");
                return;
            }
        };
        for name in silent {
            let caller = Caller::instance(&self.name, "its heartbeat found the instance silent");
            match reap(&proxy.store, &name, &caller, &self.name).await {
                Ok(reaped) => {
                    if reaped.interrupted > 0 {
                        tracing::warn!(
                            instance = name,
                            count = reaped.interrupted,
                            "A silent instance's exchanges left in flight are now marked interrupted."
                        );
                    }
                    proxy.metrics.reaped(reaped.interrupted);
                    for exchange in &reaped.deprovisions {
                        proxy
                            .alerts
                            .consider_interrupted(proxy.route_named(exchange.begun.route.as_deref()), exchange);
                    }
                }
                Err(error) => tracing::warn!(%error, instance = name, "Reaping a silent instance failed."),
            }
        }
    }

    /// Says in the store that this instance stopped cleanly, after the drain: what the drain
    /// had to cut short is marked `interrupted` first, so a stopped instance has nothing in
    /// flight and no survivor needs to reap it.
    pub(crate) async fn leave(&self, store: &Store) {
        match store.mark_interrupted(&self.name).await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(
                count,
                "Exchanges still in flight when the drain ended are marked interrupted."
            ),
            Err(error) => tracing::warn!(%error, "Exchanges left in flight could not be marked interrupted."),
        }
        if let Err(error) = store.instance_stopped(&self.name, &self.run_id, now_ms()).await {
            tracing::warn!(%error, "The instance's clean stop could not be written.");
        }
    }
}

/// Marks `name`'s exchanges left in flight `interrupted`, audited as `caller`'s action
/// carried out by `by`. The caller has claimed `name` first
/// (`Store::claim_silent_instances`, `Store::claim_instance`), so no live instance's
/// exchanges are touched and no two reapers report the same ones.
pub async fn reap(store: &Store, name: &str, caller: &Caller, by: &str) -> Result<Reaped, StoreError> {
    let deprovisions = store.in_flight_deprovisions(name).await?;
    let interrupted = store.mark_interrupted(name).await?;
    let detail = json!({
        "instance": name,
        "interrupted": interrupted,
        "deprovisions": deprovisions.iter().map(|e| e.begun.id.as_str()).collect::<Vec<_>>(),
    });
    audit::record(store, caller, by, "reap", detail).await;
    Ok(Reaped {
        interrupted,
        deprovisions,
    })
}

/// Whether `held` ran on this host as a process that no longer exists: then its heartbeat,
/// however recent, is its last (a restart after a crash). A recycled pid only makes the start
/// wait one heartbeat.
fn gone_from_this_host(held: &InstanceRecord) -> bool {
    held.host == crate::config::hostname()
        && i64::from(std::process::id()) != held.pid
        && cfg!(target_os = "linux")
        && !std::path::Path::new(&format!("/proc/{}", held.pid)).exists()
}
