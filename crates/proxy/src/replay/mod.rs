//! Replay: the recorded requests that failed, sent again through the route's *current* rules,
//! with the route's configured credentials, each recorded as a new exchange linked to its
//! original (`replay_of`).
//!
//! Safe by default, in this order, for every selected exchange (oldest first):
//! 1. The plan (`scimtrail_analysis::replay_plan`, pure) skips what must not be sent: reads,
//!    replays, successes, exchanges already replayed successfully, and exchanges superseded
//!    by later writes to the same resource.
//! 2. `check.rs` asks the configuration, the store and the application: a create whose
//!    resource exists already is skipped (looked up by `userName` / `displayName`, then
//!    `externalId`), so is a write to a resource that is no longer there.
//! 3. `rebuild.rs` (pure) rebuilds the request from the record: secret headers dropped (the
//!    route supplies its own credentials), passwords — redacted when recorded — left out and
//!    said so.
//! 4. A dry run stops at `preview.rs`'s preview. Otherwise the request goes through the same
//!    exchange path as an IdP's request. The run stops at the first replay the application
//!    does not answer: the rest would fail the same way, and order matters.
//!
//! Replaying the same set twice does no harm: what succeeded is skipped as already replayed.
//! `select.rs` takes up the exchanges and what the plan decides from; `report.rs` holds what
//! a run reports.

mod check;
mod preview;
mod rebuild;
mod report;
mod select;
#[cfg(test)]
mod tests;

pub use report::{ReplayItem, ReplayReport, RulesChanged};

use crate::audit::{self, Caller};
use crate::clock::now_ms;
use crate::exchange::{relative_path, Link, Origin};
use crate::pacing::Patience;
use crate::Proxy;
use bytes::Bytes;
use check::{Created, Stop, Target};
use rebuild::{LeftOut, Rebuilt};
use scimtrail_analysis::replay_plan::{self, Step};
use scimtrail_store::{rfc3339, Exchange, ExchangeQuery, StoreError, REPLAYABLE_OUTCOMES};
use serde_json::json;
use std::net::SocketAddr;

/// Why a replay run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another run holds the store's replay lease.
    #[error("another replay run is in progress ({holder}, until {until}); try again when it is done")]
    Busy {
        /// Who runs it.
        holder: String,
        /// When its lease ends, unless renewed (RFC 3339).
        until: String,
    },
}

/// How long a run's lease lasts without being renewed; it is renewed after every exchange.
const LEASE_MS: i64 = 5 * 60 * 1000;

/// Which exchanges to replay.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These, by id.
    Ids(Vec<String>),
    /// Every replayable exchange matching the filter (`replayable` is forced on).
    Filter(Box<ExchangeQuery>),
}

/// Where replays come from, for `X-Forwarded-For`: the proxy itself.
const REPLAY_PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

impl Proxy {
    /// Replays the selected exchanges (see the module's documentation). One run at a time
    /// over a store, whichever process runs it (the store's replay lease): two at once could
    /// send the same exchange twice. Audited, with `caller`, once it ran.
    pub async fn replay(
        &self,
        selection: Selection,
        dry_run: bool,
        caller: &Caller,
    ) -> Result<ReplayReport, ReplayError> {
        let holder = format!("{} ({})", self.config.instance, uuid::Uuid::now_v7());
        let lease = |now: i64| (now, now.saturating_add(LEASE_MS));
        let (now, until) = lease(now_ms());
        if let Err((holder, until)) = self.store.take_replay_lease(&holder, now, until).await? {
            return Err(ReplayError::Busy {
                holder,
                until: rfc3339(until),
            });
        }
        let selected = match &selection {
            Selection::Ids(ids) => json!({"ids": ids}),
            Selection::Filter(query) => json!({"filter": audit::filter(query, self.redactor.key())}),
        };
        let report = self.replay_leased(selection, dry_run, &holder).await;
        if let Err(error) = self.store.release_replay_lease(&holder).await {
            tracing::warn!(%error, "The replay lease could not be given up; it expires by itself.");
        }
        // A run that failed part way may have sent some: audited too.
        let detail = match &report {
            Ok(report) => json!({"selection": selected, "dry_run": dry_run, "summary": report.summary()}),
            Err(error) => json!({"selection": selected, "dry_run": dry_run, "failed": error.to_string()}),
        };
        audit::record(&self.store, caller, &self.config.instance, "replay", detail).await;
        report
    }

    async fn replay_leased(
        &self,
        selection: Selection,
        dry_run: bool,
        holder: &str,
    ) -> Result<ReplayReport, ReplayError> {
        let candidates = self.select(selection).await?;
        let gathered = self.gather(&candidates).await?;
        let steps = replay_plan::plan(&gathered.candidates, &gathered.plan, &REPLAYABLE_OUTCOMES);
        let mut report = ReplayReport {
            dry_run,
            items: Vec::with_capacity(candidates.len()),
        };
        let mut created = Created::new();
        let mut stopped: Option<String> = None;
        for (original, step) in candidates.iter().zip(steps) {
            let item = ReplayItem::new(original);
            // Renewed as the run goes: a long run keeps it, a dead one loses it.
            let (now, until) = (now_ms(), now_ms().saturating_add(LEASE_MS));
            if let Err((other, _)) = self.store.take_replay_lease(holder, now, until).await? {
                tracing::error!(%other, "The replay lease was lost; stopping the run.");
                stopped.get_or_insert_with(|| format!("not attempted: the replay lease went to {other}"));
            }
            if let Some(why) = &stopped {
                report.items.push(ReplayItem {
                    action: "not_attempted",
                    reason: Some(why.clone()),
                    ..item
                });
                continue;
            }
            let item = match step {
                Step::Skip { kind, reason } => item.skip(kind, reason),
                Step::Send {
                    left_out,
                    left_out_members,
                    notes,
                } => {
                    let mut item = item;
                    item.notes = notes;
                    let leave_out = LeftOut {
                        operations: &left_out,
                        members: &left_out_members,
                    };
                    let earlier = gathered
                        .replays
                        .get(&original.begun.id)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    self.replay_one(original, earlier, leave_out, dry_run, &mut created, item)
                        .await
                }
            };
            // The application is down, overloaded or failing: the rest would fare alike, and
            // sending later writes past a failed one could put them out of order.
            let struggling = item.status.is_some_and(|s| s == 429 || s >= 500);
            if item.action == "replayed" && (item.outcome.as_deref() == Some("unreachable") || struggling) {
                stopped = Some(format!(
                    "not attempted: the application answered the replay of {} with {}",
                    item.exchange,
                    item.status.map_or("nothing".to_owned(), |s| s.to_string())
                ));
            } else if item.kind == Some("check_failed") {
                stopped = Some(format!(
                    "not attempted: checking the replay of {} failed: {}",
                    item.exchange,
                    item.reason.as_deref().unwrap_or("-")
                ));
            }
            report.items.push(item);
        }
        Ok(report)
    }

    /// One item, phase by phase: the configuration, the store, the request rebuilt, the
    /// application; then previewed (dry run) or sent. `earlier`: the replays of `original`
    /// before this run.
    async fn replay_one(
        &self,
        original: &Exchange,
        earlier: &[Exchange],
        leave_out: LeftOut<'_>,
        dry_run: bool,
        created: &mut Created,
        mut item: ReplayItem,
    ) -> ReplayItem {
        let target = match self.target_of(original) {
            Ok(target) => target,
            Err(stop) => return item.stopped(stop),
        };
        let route = target.route;
        let left_out = match self
            .check_store(original, earlier, route, leave_out.operations, &mut item.notes)
            .await
        {
            Ok(left_out) => left_out,
            Err(stop) => return item.stopped(stop),
        };
        let leave_out = LeftOut {
            operations: &left_out,
            members: leave_out.members,
        };
        let body = match rebuild::replay_body(original, leave_out, &route.redaction) {
            Ok((body, notes)) => {
                item.notes.extend(notes);
                body
            }
            Err(skip) => return item.stopped(Stop::Skip(skip)),
        };
        let rebuilt = Rebuilt {
            rest: relative_path(&target.path, &route.path_prefix),
            headers: rebuild::headers(original, &self.redactor),
            body,
        };
        // Its checks and itself wait their turns on a paced route like any request; no client
        // waits on them.
        let mut patience = Patience::unattended();
        let current = match self
            .check_application(route, original, &rebuilt, created, &mut patience)
            .await
        {
            Ok(current) => current,
            Err(stop) => return item.stopped(stop),
        };
        item.compare_rules(original, &target.profile);
        if dry_run {
            item.action = "would_replay";
            let preview = self
                .preview(&target, original, rebuilt, current.as_ref(), &mut patience)
                .await;
            item.preview = Some(preview);
            return item;
        }
        self.send(original, target, rebuilt, &mut patience, item).await
    }

    /// Sends the rebuilt request through the exchange path, as the replay of `original`
    /// running the target's profile.
    async fn send(
        &self,
        original: &Exchange,
        target: Target<'_>,
        rebuilt: Rebuilt,
        patience: &mut Patience,
        mut item: ReplayItem,
    ) -> ReplayItem {
        let bytes = rebuilt
            .body
            .as_ref()
            .map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = match rebuild::replay_request(original, rebuilt.headers, bytes) {
            Ok(request) => request,
            Err(reason) => return item.fail("bad_record", reason),
        };
        let replayed = self
            .run_exchange(
                request,
                Origin {
                    peer: SocketAddr::from(REPLAY_PEER),
                    scheme: "http",
                },
                Link {
                    replay_of: Some(original.begun.id.clone()),
                    profile: Some(target.profile),
                    ..Link::default()
                },
                patience,
            )
            .await;
        let status = replayed.response.status();
        item.action = "replayed";
        item.status = Some(status.as_u16());
        item.replay = Some(replayed.id);
        item.outcome = Some(replayed.outcome);
        if item.outcome.as_deref() != Some("ok") {
            item.kind = Some("replay_failed");
            item.reason = Some(format!("the application answered {status}"));
        }
        item
    }
}
