//! Reconcile: what the application holds, read back through a route with its credentials,
//! against what the IdP intended (`scimtrail_intent`, kept in the store), and the repair
//! that brings it back (`repair.rs`).
//!
//! Memory stays bounded by a page whatever the population: the application is read a page
//! of its list at a time (`max_results` per page); each page's resources are looked up in the
//! intent by id (or, for a create no id came of, by name; or, for one a repair created again,
//! by the IdP's id for it) and compared; the ids seen go to the store, and what the intent
//! holds that the application never showed is then read from the store a page at a time
//! (`missing_in_app`, or nothing for what the IdP deleted). Every drift is kept with its run
//! as it is found; the run's counts go to `/metrics`, and its `active_mismatch` drifts —
//! leavers with access — to the log at warn and to the route's webhook, one alert per run.
//! A repair is planned from the very resource just read, and sent (or, dry, kept) before the
//! next page is read; users are reconciled before groups, so that a group's members are
//! those the users' repairs left.

mod follower;
mod repair;

pub(crate) use follower::{spawn_intent_follower, spawn_schedules};
pub use repair::Repairing;

use crate::audit::{self, Caller};
use crate::clock::now_ms;
use crate::config::Route;
use crate::{state, Proxy};
use http::HeaderMap;
use repair::{Aliases, Repairs};
use scimtrail_intent::drift::text_at;
use scimtrail_intent::written::by_name;
use scimtrail_intent::{compare, repair::plan, unknown_to_idp, Drift, DriftKind, Intended, IntentWrite, Repair};
use scimtrail_store::{Reconciliation, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The resource types reconcile follows, in the order a run reconciles them.
pub const RESOURCE_TYPES: [&str; 2] = ["Users", "Groups"];

/// The most resources of one type a run reads from an application.
const MAX_RESOURCES: u64 = 10_000_000;

/// Leavers with access an alert names, at most (it gives the count of all).
const ALERT_EXAMPLES: usize = 50;

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

/// A run's outcome: the run as recorded, with its counts by kind and what its repair did.
#[derive(Debug, Clone)]
pub struct ReconcileReport {
    pub run: Reconciliation,
}

impl ReconcileReport {
    /// As the API and `--json` show it (without the drifts and repairs: they are read page by
    /// page).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.run.id,
            "route": self.run.route,
            "resource_types": self.run.resource_types,
            "started_at_ms": self.run.started_at_ms,
            "finished_at_ms": self.run.finished_at_ms,
            "counts": self.run.counts,
            "repair": self.run.repair,
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
    /// `caller`'s and audited; `repairing` says whether to repair what drifted, or to plan it.
    pub async fn reconcile(
        &self,
        route_name: &str,
        resource_types: &[String],
        repairing: Repairing,
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
            repair: None,
        };
        self.store.begin_reconciliation(&run).await?;
        let mut found = Found {
            run: run.id.clone(),
            next: 0,
            counts: &mut run.counts,
            leavers: Vec::new(),
            aliases: Aliases::of(self.store.intent_aliases(&route.name).await?),
            repairs: Repairs::new(repairing),
        };
        let mut failed = None;
        for resource_type in &types {
            if let Err(error) = self.reconcile_type(route, resource_type, &mut found).await {
                failed = Some(error);
                break;
            }
        }
        let (leavers, repairs) = (std::mem::take(&mut found.leavers), found.repairs.summary());
        run.finished_at_ms = Some(now_ms());
        run.error = failed.as_ref().map(ToString::to_string);
        self.store
            .finish_reconciliation(&run.id, now_ms(), &run.counts, run.error.as_deref())
            .await?;
        if let Some(repairs) = &repairs {
            self.store.set_reconciliation_repair(&run.id, repairs).await?;
        }
        run.repair = repairs;
        // A run cut short counted only part of the drift: the gauges keep the last whole run's.
        if failed.is_none() {
            self.metrics.set_drift(&route.name, &run.counts);
        }
        self.alerts.leavers_with_access(route, &run, &leavers);
        let detail = json!({"route": run.route, "run": run.id, "resource_types": run.resource_types,
            "counts": run.counts, "repair": run.repair, "error": run.error});
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
            let compared = self.compare_page(route, resource_type, &resources, found).await?;
            found.keep(&self.store, compared.drifts, compared.seen).await?;
            for (repair, app_id) in compared.repairs {
                self.repair(route, repair, Some(&app_id), found).await?;
            }
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
                .unseen_intended_page(&found.run, &route.name, resource_type, &after, 500)
                .await?;
            let Some((last, _)) = unseen.last() else { break };
            after.clone_from(last);
            let mut drifts = Vec::new();
            let mut repairs = Vec::new();
            for (id, rows) in &unseen {
                let intended = found
                    .aliases
                    .as_the_application_knows(Intended::fold(resource_type, id, rows));
                let compared = compare(&intended, None);
                repairs.extend(
                    found
                        .repairs
                        .wanted()
                        .then(|| plan(&intended, None, &compared))
                        .flatten(),
                );
                drifts.extend(compared);
            }
            found.keep(&self.store, drifts, Vec::new()).await?;
            for repair in repairs {
                self.repair(route, repair, None, found).await?;
            }
        }
        Ok(())
    }

    /// A page of the application's resources against their intent: the drifts, the
    /// intent's ids they account for, and the repairs they call for (when repairing).
    async fn compare_page(
        &self,
        route: &Route,
        resource_type: &str,
        resources: &[Value],
        found: &Found<'_>,
    ) -> Result<Compared, ReconcileError> {
        let name_attribute = if resource_type == "Users" {
            "userName"
        } else {
            "displayName"
        };
        let ids: Vec<String> = resources.iter().filter_map(|r| text_at(r, "id")).collect();
        let named = resources
            .iter()
            .filter_map(|r| text_at(r, name_attribute))
            .map(|name| by_name(&name));
        let aliased = ids
            .iter()
            .filter_map(|id| found.aliases.idp_id(resource_type, id))
            .cloned();
        let wanted: Vec<String> = ids.iter().cloned().chain(named).chain(aliased).collect();
        let intents: HashMap<String, Vec<IntentWrite>> = self
            .store
            .intended_of(&route.name, resource_type, &wanted)
            .await?
            .into_iter()
            .collect();
        let mut compared = Compared::default();
        for resource in resources {
            let id = text_at(resource, "id").unwrap_or_default();
            let name = text_at(resource, name_attribute).map(|name| by_name(&name));
            let aliased = found.aliases.idp_id(resource_type, &id);
            let known = intents
                .get_key_value(&id)
                .or_else(|| aliased.and_then(|idp_id| intents.get_key_value(idp_id)))
                .or_else(|| name.as_ref().and_then(|name| intents.get_key_value(name)));
            let Some((key, rows)) = known else {
                compared.drifts.push(unknown_to_idp(resource_type, resource));
                continue;
            };
            let intended = found
                .aliases
                .as_the_application_knows(Intended::fold(resource_type, key, rows));
            let drifts = compare(&intended, Some(resource));
            if found.repairs.wanted() {
                compared
                    .repairs
                    .extend(plan(&intended, Some(resource), &drifts).map(|r| (r, id.clone())));
            }
            compared.drifts.extend(drifts);
            // Every name the intent may know this resource by is accounted for: a create first
            // known by name and since by its id, and the IdP's id of one a repair re-created.
            compared.seen.push((resource_type.to_owned(), key.clone()));
            for other in [name.as_ref(), aliased].into_iter().flatten() {
                if other != key && intents.contains_key(other) {
                    compared.seen.push((resource_type.to_owned(), other.clone()));
                }
            }
        }
        Ok(compared)
    }
}

/// What comparing a page found.
#[derive(Default)]
struct Compared {
    drifts: Vec<Drift>,
    /// The intent's resources the page accounts for, by type and id.
    seen: Vec<(String, String)>,
    /// Each repair with the application's id of its resource.
    repairs: Vec<(Repair, String)>,
}

/// What a run has found so far, and what its repair did.
struct Found<'a> {
    run: String,
    /// The number of the next drift kept.
    next: i64,
    counts: &'a mut BTreeMap<String, u64>,
    /// The first `active_mismatch` drifts, for the alert.
    leavers: Vec<Drift>,
    aliases: Aliases,
    repairs: Repairs,
}

impl Found<'_> {
    async fn keep(
        &mut self,
        store: &scimtrail_store::Store,
        mut drifts: Vec<Drift>,
        seen: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        drifts.sort_by_key(|d| d.kind);
        for drift in &drifts {
            *self.counts.entry(drift.kind.as_str().to_owned()).or_default() += 1;
            if drift.kind == DriftKind::ActiveMismatch {
                tracing::warn!(run = %self.run, resource = %drift.resource_id, name = ?drift.name, established_by = ?drift.established_by,
                    "A user the IdP deactivated or deleted is active in the application.");
                if self.leavers.len() < ALERT_EXAMPLES {
                    self.leavers.push(drift.clone());
                }
            }
        }
        store
            .add_reconciliation_page(&self.run, self.next, &drifts, &seen)
            .await?;
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
