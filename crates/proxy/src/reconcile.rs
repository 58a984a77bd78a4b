//! Reconcile: what the application holds, read back through a route with its credentials,
//! against what the IdP intended (`scimtrail_intent`, kept in the store).
//!
//! Memory stays bounded by a page whatever the population: the application is read a page
//! of its list at a time (`max_results` per page); each page's resources are looked up in the
//! intent by id (or, for a create no id came of, by name) and compared; the ids seen go to the
//! store, and what the intent holds that the application never showed is then read from the
//! store a page at a time (`missing_in_app`, or nothing for what the IdP deleted). Every drift
//! is kept with its run as it is found; the run's counts go to `/metrics` and its
//! `active_mismatch` drifts — leavers with access — to the log at warn.

use crate::audit::{self, Caller};
use crate::clock::now_ms;
use crate::config::Route;
use crate::{state, Proxy};
use http::HeaderMap;
use scimtrail_intent::drift::text_at;
use scimtrail_intent::written::by_name;
use scimtrail_intent::{compare, unknown_to_idp, Drift, DriftKind, Intended, IntentWrite};
use scimtrail_store::{Reconciliation, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The resource types reconcile follows.
pub const RESOURCE_TYPES: [&str; 2] = ["Users", "Groups"];

/// The most resources of one type a run reads from an application.
const MAX_RESOURCES: u64 = 10_000_000;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no route is named \"{0}\"")]
    NoRoute(String),
    #[error("\"{0}\" is not a resource type reconcile follows (Users, Groups)")]
    ResourceType(String),
    #[error("reading the application failed: {0}")]
    Application(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// A run's outcome: the run as recorded, and how many drifts of each kind it found.
#[derive(Debug, Clone)]
pub struct ReconcileReport {
    pub run: Reconciliation,
}

impl ReconcileReport {
    /// As the API and `--json` show it (without the drifts: they are read page by page).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.run.id,
            "route": self.run.route,
            "resource_types": self.run.resource_types,
            "started_at_ms": self.run.started_at_ms,
            "finished_at_ms": self.run.finished_at_ms,
            "counts": self.run.counts,
            "error": self.run.error,
            "actor": self.run.actor,
        })
    }

    /// How many drifts of `kind` it found.
    pub fn count(&self, kind: DriftKind) -> u64 {
        self.run.counts.get(kind.as_str()).copied().unwrap_or(0)
    }
}

impl Proxy {
    /// Reconciles `route_name`'s `resource_types` (both when empty), recorded as a run of
    /// `caller`'s and audited.
    pub async fn reconcile(
        &self,
        route_name: &str,
        resource_types: &[String],
        caller: &Caller,
    ) -> Result<ReconcileReport, ReconcileError> {
        let route = self
            .config
            .routes
            .iter()
            .find(|route| route.name == route_name)
            .ok_or_else(|| ReconcileError::NoRoute(route_name.to_owned()))?;
        let types = chosen_types(resource_types)?;
        // The latest writes count too.
        self.store.fold_pending_intent(500).await?;
        let mut run = Reconciliation {
            id: uuid::Uuid::now_v7().to_string(),
            route: route.name.clone(),
            resource_types: types.iter().map(|t| (*t).to_owned()).collect(),
            started_at_ms: now_ms(),
            finished_at_ms: None,
            counts: DriftKind::ALL.iter().map(|k| (k.as_str().to_owned(), 0)).collect(),
            error: None,
            actor: caller.actor.clone(),
            instance: self.config.instance.clone(),
        };
        self.store.begin_reconciliation(&run).await?;
        let mut found = Found {
            next: 0,
            counts: &mut run.counts,
        };
        let mut failed = None;
        for resource_type in &types {
            if let Err(error) = self.reconcile_type(route, resource_type, &run.id, &mut found).await {
                failed = Some(error);
                break;
            }
        }
        run.finished_at_ms = Some(now_ms());
        run.error = failed.as_ref().map(ToString::to_string);
        self.store
            .finish_reconciliation(&run.id, now_ms(), &run.counts, run.error.as_deref())
            .await?;
        // A run cut short counted only part of the drift: the gauges keep the last whole run's.
        if failed.is_none() {
            self.metrics.set_drift(&route.name, &run.counts);
        }
        let detail = json!({"route": run.route, "run": run.id, "resource_types": run.resource_types,
            "counts": run.counts, "error": run.error});
        audit::record(&self.store, caller, &self.config.instance, "reconcile", detail).await;
        match failed {
            Some(error) => Err(error),
            None => Ok(ReconcileReport { run }),
        }
    }

    /// One resource type: the application's list page by page, then what it never showed.
    async fn reconcile_type(
        &self,
        route: &Route,
        resource_type: &str,
        run: &str,
        found: &mut Found<'_>,
    ) -> Result<(), ReconcileError> {
        let page_size = route.target.max_results.clamp(1, 1000);
        let mut start = 1;
        let mut previous_first: Option<String> = None;
        while start <= MAX_RESOURCES {
            let path = format!("/{resource_type}?startIndex={start}&count={page_size}");
            // Each page waits its turn on a paced route, as any request to the application.
            let mut patience = crate::pacing::Patience::unattended();
            let page = state::read(&self.upstream, route, &HeaderMap::new(), &path, &mut patience)
                .await
                .map_err(ReconcileError::Application)?
                .ok_or_else(|| ReconcileError::Application(format!("GET {path} was answered 404")))?;
            let resources: Vec<Value> = page
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = page.get("totalResults").and_then(Value::as_u64).unwrap_or(0);
            let next = next_page(start, &resources, total, previous_first.as_deref())
                .map_err(|why| ReconcileError::Application(format!("GET {path}: {why}")))?;
            if resources.is_empty() {
                break;
            }
            let (drifts, seen) = self.compare_page(route, resource_type, &resources).await?;
            found.keep(&self.store, run, drifts, seen).await?;
            previous_first = resources.first().and_then(|r| text_at(r, "id"));
            match next {
                Some(next) => start = next,
                None => break,
            }
        }
        let mut after = String::new();
        loop {
            let unseen = self
                .store
                .unseen_intended_page(run, &route.name, resource_type, &after, 500)
                .await?;
            let Some((last, _)) = unseen.last() else { break };
            after.clone_from(last);
            let drifts = unseen
                .iter()
                .flat_map(|(id, rows)| compare(&Intended::fold(resource_type, id, rows), None))
                .collect();
            found.keep(&self.store, run, drifts, Vec::new()).await?;
        }
        Ok(())
    }

    /// A page of the application's resources against their intent: the drifts, and the
    /// intent's ids they account for.
    async fn compare_page(
        &self,
        route: &Route,
        resource_type: &str,
        resources: &[Value],
    ) -> Result<(Vec<Drift>, Vec<(String, String)>), ReconcileError> {
        let name_attribute = if resource_type == "Users" {
            "userName"
        } else {
            "displayName"
        };
        let ids: Vec<String> = resources.iter().filter_map(|r| text_at(r, "id")).collect();
        let named: Vec<String> = resources
            .iter()
            .filter_map(|r| text_at(r, name_attribute))
            .map(|name| by_name(&name))
            .collect();
        let wanted: Vec<String> = ids.iter().chain(&named).cloned().collect();
        let intents: HashMap<String, Vec<IntentWrite>> = self
            .store
            .intended_of(&route.name, resource_type, &wanted)
            .await?
            .into_iter()
            .collect();
        let mut drifts = Vec::new();
        let mut seen = Vec::new();
        for resource in resources {
            let id = text_at(resource, "id").unwrap_or_default();
            let name = text_at(resource, name_attribute).map(|name| by_name(&name));
            let known = intents
                .get_key_value(&id)
                .or_else(|| name.as_ref().and_then(|name| intents.get_key_value(name)));
            match known {
                Some((key, rows)) => {
                    drifts.extend(compare(&Intended::fold(resource_type, key, rows), Some(resource)));
                    seen.push((resource_type.to_owned(), key.clone()));
                    // A create first known by name, and since by its id: both are this one.
                    if let Some(name) = name.filter(|name| name != key && intents.contains_key(name)) {
                        seen.push((resource_type.to_owned(), name));
                    }
                }
                None => drifts.push(unknown_to_idp(resource_type, resource)),
            }
        }
        Ok((drifts, seen))
    }
}

/// What a run has found so far.
struct Found<'a> {
    /// The number of the next drift kept.
    next: i64,
    counts: &'a mut BTreeMap<String, u64>,
}

impl Found<'_> {
    async fn keep(
        &mut self,
        store: &scimtrail_store::Store,
        run: &str,
        mut drifts: Vec<Drift>,
        seen: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        drifts.sort_by_key(|d| d.kind);
        for drift in &drifts {
            *self.counts.entry(drift.kind.as_str().to_owned()).or_default() += 1;
            if drift.kind == DriftKind::ActiveMismatch {
                tracing::warn!(run, resource = %drift.resource_id, name = ?drift.name, established_by = ?drift.established_by,
                    "A user the IdP deactivated or deleted is active in the application.");
            }
        }
        store.add_reconciliation_page(run, self.next, &drifts, &seen).await?;
        self.next += i64::try_from(drifts.len()).unwrap_or(i64::MAX);
        Ok(())
    }
}

/// Where the list's next page starts after the page `resources` read from `start`, or
/// `None` when the list is read. `Err` when the application does not page: it answered with
/// the page it gave for an earlier start (an application that ignores `startIndex` would
/// otherwise be read again and again, up to [`MAX_RESOURCES`]).
fn next_page(start: u64, resources: &[Value], total: u64, previous_first: Option<&str>) -> Result<Option<u64>, String> {
    let first = resources.first().and_then(|r| text_at(r, "id"));
    if first.is_some() && first.as_deref() == previous_first {
        return Err(format!(
            "startIndex={start} was answered with the page of an earlier startIndex: the application does not page, so reconcile stopped rather than read it again"
        ));
    }
    let next = start + resources.len() as u64;
    Ok((!resources.is_empty() && next <= total).then_some(next))
}

fn chosen_types(asked: &[String]) -> Result<Vec<&'static str>, ReconcileError> {
    if asked.is_empty() {
        return Ok(RESOURCE_TYPES.to_vec());
    }
    asked
        .iter()
        .map(|asked| {
            RESOURCE_TYPES
                .iter()
                .find(|known| known.eq_ignore_ascii_case(asked))
                .copied()
                .ok_or_else(|| ReconcileError::ResourceType(asked.clone()))
        })
        .collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_followed_to_the_total_and_an_application_that_does_not_page_is_stopped() {
        let page = |ids: &[&str]| -> Vec<Value> { ids.iter().map(|id| json!({"id": id})).collect() };
        /// (start, the page, totalResults, the previous page's first id, the next start)
        type Case = (u64, Vec<Value>, u64, Option<&'static str>, Result<Option<u64>, ()>);
        let cases: Vec<Case> = vec![
            (1, page(&["a", "b"]), 5, None, Ok(Some(3))),
            (3, page(&["c", "d"]), 5, Some("a"), Ok(Some(5))),
            (5, page(&["e"]), 5, Some("c"), Ok(None)),
            (1, page(&[]), 0, None, Ok(None)),
            // More than asked for, all of it: read.
            (1, page(&["a", "b", "c"]), 3, None, Ok(None)),
            // startIndex ignored: the first page again.
            (3, page(&["a", "b"]), 5, Some("a"), Err(())),
        ];
        for (start, resources, total, previous, expected) in cases {
            let got = next_page(start, &resources, total, previous).map_err(|_| ());
            assert_eq!(got, expected, "start {start}, previous {previous:?}");
        }
    }
}
