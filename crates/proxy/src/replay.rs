//! Replay: the recorded requests that failed, sent again through the route's *current* rules,
//! with the route's configured credentials, each recorded as a new exchange linked to its
//! original (`replay_of`).
//!
//! Safe by default, in this order, for every selected exchange (oldest first):
//! 1. `plan.rs` skips what must not be sent: reads, replays, successes, exchanges already
//!    replayed successfully, and exchanges superseded by later writes to the same resource.
//! 2. The application is asked: a create whose resource exists already is skipped (looked up
//!    by `userName` / `displayName`, then `externalId`), so is a write to a resource that is
//!    no longer there.
//! 3. The request is rebuilt from the record: secret headers dropped (the route supplies its
//!    own credentials), passwords — redacted when recorded — left out and said so.
//! 4. It goes through the same exchange path as an IdP's request. The run stops at the first
//!    replay the application does not answer: the rest would fail the same way, and order
//!    matters.
//!
//! Replaying the same set twice does no harm: what succeeded is skipped as already replayed.

mod plan;

use crate::audit::{self, Caller};
use crate::clock::now_ms;
use crate::exchange::{relative_path, rules_request, Link, Origin};
use crate::pacing::Patience;
use crate::path_safety::{self, PathCheck};
use crate::{state, Proxy, Route};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::Full;
use plan::{resource_of, Step};
use scimtrail_rules::Profile;
use scimtrail_scim::json as scim_json;
use scimtrail_scim::message::resolve_bulk_ids;
use scimtrail_scim::patch::PatchRequest;
use scimtrail_scim::redact::Redaction;
use scimtrail_scim::ResourceType;
use scimtrail_store::{rfc3339, Exchange, ExchangeQuery, StoreError};
use serde_json::{json, Map, Value};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
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

/// What a replay run did, or would do.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Whether nothing was sent.
    pub dry_run: bool,
    /// One item per selected exchange, oldest first.
    pub items: Vec<ReplayItem>,
}

/// One selected exchange and what became of it.
#[derive(Debug, Clone)]
pub struct ReplayItem {
    /// The original exchange.
    pub exchange: String,
    /// `METHOD /path` as the IdP sent it.
    pub request: String,
    /// `replayed`, `failed` (could not be replayed, or the replay failed), `skipped`,
    /// `would_replay` (dry run), `not_attempted` (after the application stopped answering).
    pub action: &'static str,
    /// Why it was skipped or failed, by kind: `superseded`, `already_replayed`,
    /// `exists_upstream`, `gone_upstream`, …
    pub kind: Option<&'static str>,
    /// The reason, in words.
    pub reason: Option<String>,
    /// The new exchange, when one was sent.
    pub replay: Option<String>,
    /// Its status and outcome.
    pub status: Option<u16>,
    /// Its outcome.
    pub outcome: Option<String>,
    /// What else the operator should know (passwords left out, operations dropped, the
    /// rules changed, …).
    pub notes: Vec<String>,
    /// When the rules the replay runs (the route's profile now) are not those the original
    /// ran: their `rules_version`s, then and now. The replay goes on: running the failure
    /// through rules fixed since is what replay is for.
    pub rules_changed: Option<RulesChanged>,
    /// Dry run: what would be sent, its diff from what was sent before, and the attribute
    /// diff against the resource as the application has it now.
    pub preview: Option<Value>,
}

/// The rules of a replay against those of its original (see [`ReplayItem::rules_changed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesChanged {
    /// The route's profile.
    pub profile: String,
    /// The original's `rules_version`.
    pub from: String,
    /// The profile's version now.
    pub to: String,
}

impl ReplayItem {
    fn new(exchange: &Exchange) -> ReplayItem {
        ReplayItem {
            exchange: exchange.id.clone(),
            request: format!("{} {}", exchange.method, exchange.path),
            action: "skipped",
            kind: None,
            reason: None,
            replay: None,
            status: None,
            outcome: None,
            notes: Vec::new(),
            rules_changed: None,
            preview: None,
        }
    }

    fn skip(mut self, kind: &'static str, reason: String) -> ReplayItem {
        self.action = "skipped";
        self.kind = Some(kind);
        self.reason = Some(reason);
        self
    }

    fn fail(mut self, kind: &'static str, reason: String) -> ReplayItem {
        self.action = "failed";
        self.kind = Some(kind);
        self.reason = Some(reason);
        self
    }

    /// The item as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "exchange": self.exchange,
            "request": self.request,
            "action": self.action,
            "kind": self.kind,
            "reason": self.reason,
            "replay": self.replay,
            "status": self.status,
            "outcome": self.outcome,
            "notes": self.notes,
            "rules_changed": self.rules_changed.as_ref().map(|c| json!({"profile": c.profile, "from": c.from, "to": c.to})),
            "preview": self.preview,
        })
    }
}

impl ReplayReport {
    /// Counts: selected, replayed, succeeded, failed, skipped, and skipped by kind.
    pub fn summary(&self) -> Value {
        let count = |action: &str| self.items.iter().filter(|i| i.action == action).count();
        let succeeded = self
            .items
            .iter()
            .filter(|i| i.action == "replayed" && i.outcome.as_deref() == Some("ok"))
            .count();
        let mut skipped_because: Map<String, Value> = Map::new();
        for item in self.items.iter().filter(|i| i.action == "skipped") {
            let kind = item.kind.unwrap_or("other").to_owned();
            let n = skipped_because.get(&kind).and_then(Value::as_u64).unwrap_or(0);
            skipped_because.insert(kind, json!(n + 1));
        }
        json!({
            "dry_run": self.dry_run,
            "selected": self.items.len(),
            "replayed": count("replayed"),
            "succeeded": succeeded,
            "failed": count("failed") + (count("replayed") - succeeded),
            "skipped": count("skipped"),
            "skipped_because": skipped_because,
            "would_replay": count("would_replay"),
            "not_attempted": count("not_attempted"),
        })
    }

    /// Whether every replay sent succeeded and nothing failed to be checked.
    pub fn all_succeeded(&self) -> bool {
        self.items.iter().all(|i| match i.action {
            "replayed" => i.outcome.as_deref() == Some("ok"),
            "failed" | "not_attempted" => false,
            _ => true,
        })
    }

    /// The report as JSON: the items and the summary.
    pub fn to_json(&self) -> Value {
        json!({
            "items": self.items.iter().map(ReplayItem::to_json).collect::<Vec<_>>(),
            "summary": self.summary(),
        })
    }
}

/// Headers never taken from a record into a replay: the hop-by-hop and framing ones, the
/// forwarding ones (the replay sets its own), the version the IdP meant (stale by now).
const NOT_REPLAYED: [&str; 16] = [
    "content-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "if-match",
    "if-none-match",
];

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
        let mut recorded = plan::Recorded::default();
        for candidate in &candidates {
            if let Some(key) = resource_of(candidate) {
                if let Entry::Vacant(slot) = recorded.writes.entry(key.clone()) {
                    let (route, resource_type, id) = slot.key();
                    let found = self.store.writes_to(route, resource_type, id).await?;
                    slot.insert(self.in_the_idps_order(found).await?);
                    let summary = self.store.resource_writes(&key.0, &key.1, &key.2).await?;
                    recorded.summaries.insert(key, summary);
                }
            }
            recorded
                .replays
                .insert(candidate.id.clone(), self.store.replays(&candidate.id).await?);
        }
        let steps = plan::plan(&candidates, &recorded);
        let mut report = ReplayReport {
            dry_run,
            items: Vec::with_capacity(candidates.len()),
        };
        // Creates sent (or, in a dry run, that would be) in this run: a second create of the
        // same resource is skipped even before the application is asked.
        let mut created: HashSet<(String, String, String)> = HashSet::new();
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
                    let earlier = recorded
                        .replays
                        .get(&original.id)
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

    /// Writes as they stand in the IdP's order: an exchange made for a replay (a fanned-out
    /// bulk operation) stands where the replay's original stands, as the replay itself does.
    async fn in_the_idps_order(&self, mut writes: Vec<Exchange>) -> Result<Vec<Exchange>, StoreError> {
        let mut originals: HashMap<String, Option<String>> = HashMap::new();
        for write in &mut writes {
            let Some(parent) = write.parent_id.clone() else {
                continue;
            };
            let original = match originals.get(&parent) {
                Some(original) => original.clone(),
                None => {
                    let original = match self.store.get(&parent).await {
                        Ok(parent) => parent.replay_of,
                        Err(StoreError::NotFound(_)) => None,
                        Err(error) => return Err(error),
                    };
                    originals.insert(parent, original.clone());
                    original
                }
            };
            if original.is_some() {
                write.replay_of = original;
            }
        }
        Ok(writes)
    }

    /// The selected exchanges, oldest first, each once.
    async fn select(&self, selection: Selection) -> Result<Vec<Exchange>, StoreError> {
        let mut found = match selection {
            Selection::Ids(ids) => {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    found.push(self.store.get(&id).await?);
                }
                found
            }
            Selection::Filter(mut filter) => {
                filter.replayable = true;
                filter.limit = 1000;
                let mut all = Vec::new();
                loop {
                    let page = self.store.list(&filter).await?;
                    all.extend(page.items);
                    match page.next_cursor {
                        Some(cursor) => filter.cursor = Some(cursor),
                        None => break all,
                    }
                }
            }
        };
        // Ids are UUIDv7: their order is the order the IdP sent them in.
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.dedup_by(|a, b| a.id == b.id);
        Ok(found)
    }

    /// `earlier`: the replays of `original` before this run.
    async fn replay_one(
        &self,
        original: &Exchange,
        earlier: &[Exchange],
        leave_out: LeftOut<'_>,
        dry_run: bool,
        created: &mut HashSet<(String, String, String)>,
        mut item: ReplayItem,
    ) -> ReplayItem {
        let Some(route) = self.route_named(original.route.as_deref()) else {
            let route = original.route.as_deref().unwrap_or("-");
            return item.fail(
                "no_route",
                format!("route {route} is not in the configuration any more"),
            );
        };
        // The rules of the whole replay, taken once: the dry run previews with them, and the
        // replay's exchange runs them (a reload meanwhile reaches the next one).
        let Some(profile) = self.profiles.of(route) else {
            return item.fail(
                "no_profile",
                format!(
                    "route {} names profile {}, which is not among the profiles in force",
                    route.name, route.idp
                ),
            );
        };
        // As admission read the path: empty segments collapsed (a path it refused was never
        // forwarded, so is not replayed).
        let path = match path_safety::check(&original.path) {
            PathCheck::Collapsed(collapsed) => collapsed,
            PathCheck::Clean | PathCheck::Refused(_) => original.path.clone(),
        };
        if self.route_for(&path).map(|r| r.name.as_str()) != Some(route.name.as_str()) {
            return item.fail(
                "no_route",
                format!("{} is no longer served by route {}", original.path, route.name),
            );
        }
        // The IdP's credentials were recorded as a fingerprint only: without credentials of
        // its own, the route cannot authenticate a replay.
        let had_credentials = original.request_headers.as_array().is_some_and(|pairs| {
            pairs
                .iter()
                .any(|p| p[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("authorization")))
        });
        if had_credentials && route.upstream_auth.is_none() {
            return item.fail(
                "no_credentials",
                format!(
                    "route {} has no upstream_auth, and the IdP's credentials were not recorded: configure upstream_auth to replay",
                    route.name
                ),
            );
        }
        let mut left_out = leave_out.operations.to_vec();
        if original.operation == "bulk" {
            match self.bulk_left_out(original, earlier, route).await {
                Ok(Ok((out, notes))) => {
                    left_out = out;
                    item.notes.extend(notes);
                }
                Ok(Err((kind, reason))) => return item.skip(kind, reason),
                Err(error) => return item.fail("check_failed", format!("the store could not be read: {error}")),
            }
        }
        if original.operation == "create" {
            match self.created_again_later(original, route).await {
                Ok(Some(reason)) => return item.skip("superseded", reason),
                Ok(None) => {}
                Err(error) => return item.fail("check_failed", format!("the store could not be read: {error}")),
            }
        }
        let leave_out = LeftOut {
            operations: &left_out,
            members: leave_out.members,
        };
        let body = match replay_body(original, leave_out, &route.redaction) {
            Ok((body, notes)) => {
                item.notes.extend(notes);
                body
            }
            Err((kind, reason)) => return item.skip(kind, reason),
        };
        let rest = relative_path(&path, &route.path_prefix);
        let headers = self.replay_headers(original);
        // Its checks and itself wait their turns on a paced route like any request; no client
        // waits on them.
        let mut patience = Patience::unattended();
        let resource_type = original
            .resource_type
            .as_deref()
            .and_then(|rt| ResourceType::by_endpoint(&format!("/{rt}")));

        // What the application has now: a create must not make a second resource; a write
        // to a resource that is gone would only fail.
        let mut current = None;
        if original.operation == "create" {
            match self
                .existing(route, &headers, &rest, body.as_ref(), created, &mut patience)
                .await
            {
                Ok(None) => {}
                Ok(Some((kind, reason))) => return item.skip(kind, reason),
                Err(reason) => return item.fail("check_failed", reason),
            }
        } else if original.resource_id.is_some() {
            match state::read(&self.upstream, route, &headers, &rest, &mut patience).await {
                Ok(Some(resource)) => current = Some(resource),
                Ok(None) => {
                    let reason = if original.method == "DELETE" {
                        "already gone: the application has no such resource".to_owned()
                    } else {
                        format!("the application has no resource at {rest} any more")
                    };
                    return item.skip("gone_upstream", reason);
                }
                Err(reason) => return item.fail("check_failed", format!("could not read the resource: {reason}")),
            }
        }

        match original.rules_version.as_deref() {
            Some(from) if from != profile.version() => {
                item.notes.push(format!(
                    "the rules differ from the original's: profile {} was rules_version {from}, is {} now; the replay runs the current rules",
                    profile.name,
                    profile.version()
                ));
                item.rules_changed = Some(RulesChanged {
                    profile: profile.name.clone(),
                    from: from.to_owned(),
                    to: profile.version().to_owned(),
                });
            }
            Some(_) => {}
            None => item.notes.push(format!(
                "the original recorded no rules_version (recorded before versions were kept): its rules cannot be compared with profile {}'s now ({})",
                profile.name,
                profile.version()
            )),
        }
        if dry_run {
            item.action = "would_replay";
            item.preview = Some(
                self.preview(
                    route,
                    &profile,
                    original,
                    &rest,
                    &headers,
                    body,
                    current.as_ref(),
                    resource_type,
                    &mut patience,
                )
                .await,
            );
            return item;
        }
        let bytes = body.as_ref().map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let request = match replay_request(original, headers, bytes) {
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
                    replay_of: Some(original.id.clone()),
                    profile: Some(profile),
                    ..Link::default()
                },
                &mut patience,
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

    /// For a create: why it is superseded, when the IdP created the same user (userName) or
    /// group (displayName) again later and that succeeded — the retry of a create that
    /// failed; replaying the first would make a second resource, or bring back one deleted
    /// since.
    async fn created_again_later(&self, original: &Exchange, route: &Route) -> Result<Option<String>, StoreError> {
        let Some(resource_type) = original.resource_type.as_deref() else {
            return Ok(None);
        };
        let body: Option<Value> = original
            .request_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok());
        let (attribute, name) = if resource_type == "Groups" {
            (
                "displayName",
                body.as_ref().and_then(|b| b.get("displayName")).and_then(Value::as_str),
            )
        } else {
            ("userName", original.user_name.as_deref())
        };
        let Some(name) = name else { return Ok(None) };
        let user_name = (resource_type != "Groups").then_some(name);
        let later = self
            .store
            .later_creates(&route.name, resource_type, &original.id, user_name)
            .await?;
        // A replay stands where its original stands: the replay of an earlier create is not a
        // later one.
        let again = later.iter().find(|create| {
            create.replay_of.as_deref().unwrap_or(&create.id) > original.id.as_str()
                && (user_name.is_some()
                    || create
                        .request_body
                        .as_deref()
                        .and_then(|b| serde_json::from_str::<Value>(b).ok())
                        .and_then(|b| b.get("displayName").and_then(Value::as_str).map(str::to_owned))
                        .is_some_and(|later| later.eq_ignore_ascii_case(name)))
        });
        Ok(again.map(|create| {
            format!(
                "superseded: the IdP created {attribute} \"{name}\" again later, successfully ({})",
                create.id
            )
        }))
    }

    /// For a bulk request: the operations not to send again, and why — those that took
    /// effect (in the original or a replay of it), and those whose resource was written
    /// later with success (sending them could undo the later write). `Err` with a skip when
    /// what took effect is unknown.
    async fn bulk_left_out(
        &self,
        original: &Exchange,
        replays: &[Exchange],
        route: &Route,
    ) -> Result<Result<(Vec<usize>, Vec<String>), SkipReason>, StoreError> {
        let Some(recorded) = original.bulk_operations.as_ref().and_then(Value::as_array) else {
            return Ok(Err((
                "not_replayable",
                "which of its bulk operations took effect is unknown (it was interrupted): send them again from the IdP, or replay the operations one by one".to_owned(),
            )));
        };
        let done_in_a_replay = |op: &Value| {
            replays.iter().any(|replay| {
                replay
                    .bulk_operations
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|ops| {
                        ops.iter().any(|r| {
                            r["outcome"] == "ok"
                                && match op["bulkId"].as_str() {
                                    Some(bulk_id) => r["bulkId"].as_str() == Some(bulk_id),
                                    None => r["method"] == op["method"] && r["path"] == op["path"],
                                }
                        })
                    })
            })
        };
        let mut left_out = Vec::new();
        let mut later_writes = Vec::new();
        for (index, op) in recorded.iter().enumerate() {
            if op["outcome"] == "ok" || done_in_a_replay(op) {
                left_out.push(index);
                continue;
            }
            let path = op["path"].as_str().unwrap_or_default();
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            if let [resource_type @ ("Users" | "Groups"), id] = segments.as_slice() {
                let writes = self.store.writes_to(&route.name, resource_type, id).await?;
                let writes = self.in_the_idps_order(writes).await?;
                // Operations of this very bulk request (fanned out, or fanned out by a replay of
                // it) are not later writes: they stand where it stands.
                let later = writes.iter().find(|w| {
                    w.outcome == "ok"
                        && w.parent_id.as_deref() != Some(original.id.as_str())
                        && w.replay_of.as_deref().unwrap_or(&w.id) > original.id.as_str()
                });
                // Or pruned since, as the resource's summary keeps it (this request's operations
                // stand where it stands).
                let later = match later {
                    Some(later) => Some(later.id.clone()),
                    None => self
                        .store
                        .resource_writes(&route.name, resource_type, id)
                        .await?
                        .into_iter()
                        .find(|w| w.stands_at.as_str() > original.id.as_str())
                        .map(|w| w.exchange_id),
                };
                if let Some(later) = later {
                    left_out.push(index);
                    later_writes.push(format!("#{index} ({later})"));
                }
            }
        }
        let mut notes = Vec::new();
        if !left_out.is_empty() {
            notes.push(format!(
                "{} of {} bulk operations are sent again: the ones that did not take effect",
                recorded.len() - left_out.len(),
                recorded.len()
            ));
        }
        if !later_writes.is_empty() {
            notes.push(format!(
                "bulk operations left out, their resources were written later with success: {}",
                later_writes.join(", ")
            ));
        }
        if left_out.len() == recorded.len() {
            return Ok(Err((
                "superseded",
                "every bulk operation took effect, or was written over later".to_owned(),
            )));
        }
        Ok(Ok((left_out, notes)))
    }

    /// The recorded request headers a replay sends: no secret (fingerprints are not
    /// credentials; the route supplies its own), nothing hop-by-hop or stale.
    fn replay_headers(&self, original: &Exchange) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for pair in original
            .request_headers
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (Some(name), Some(value)) = (pair.get(0).and_then(Value::as_str), pair.get(1).and_then(Value::as_str))
            else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            if NOT_REPLAYED.contains(&lower.as_str())
                || self.redactor.is_secret(&lower)
                || lower.starts_with("scimtrail-")
            {
                continue;
            }
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(lower.as_bytes()), HeaderValue::from_str(value)) {
                headers.append(name, value);
            }
        }
        headers
    }

    /// For a create: the reason to skip it when its resource exists already (upstream, or
    /// created earlier in this run), `None` to send it.
    async fn existing(
        &self,
        route: &Route,
        headers: &HeaderMap,
        endpoint: &str,
        body: Option<&Value>,
        created: &mut HashSet<(String, String, String)>,
        patience: &mut Patience,
    ) -> Result<Option<SkipReason>, String> {
        let naming = if endpoint.trim_end_matches('/').ends_with("/Groups") {
            "displayName"
        } else {
            "userName"
        };
        let names: Vec<(&str, String)> = [naming, "externalId"]
            .into_iter()
            .filter_map(|attribute| {
                let value = scim_json::get(body?.as_object()?, attribute)?.as_str()?;
                Some((attribute, value.to_owned()))
            })
            .collect();
        for (attribute, value) in &names {
            let key = (endpoint.to_owned(), (*attribute).to_owned(), value.to_lowercase());
            if created.contains(&key) {
                return Ok(Some((
                    "exists_upstream",
                    format!("{attribute} \"{value}\" is created earlier in this run"),
                )));
            }
            let found = state::find(&self.upstream, route, headers, endpoint, attribute, value, patience).await?;
            if let Some(found) = found {
                let id = found.get("id").and_then(Value::as_str).unwrap_or("?");
                return Ok(Some((
                    "exists_upstream",
                    format!("the application has it already: {attribute} eq \"{value}\" is {id}"),
                )));
            }
        }
        for (attribute, value) in names {
            created.insert((endpoint.to_owned(), attribute.to_owned(), value.to_lowercase()));
        }
        Ok(None)
    }

    /// Dry run: what would be sent after the current rules, its diff from what was sent
    /// before, and for PUT and PATCH the attribute diff against the resource now.
    #[allow(clippy::too_many_arguments)]
    async fn preview(
        &self,
        route: &Route,
        profile: &Profile,
        original: &Exchange,
        rest: &str,
        headers: &HeaderMap,
        body: Option<Value>,
        current: Option<&Value>,
        resource_type: Option<&'static ResourceType>,
        patience: &mut Patience,
    ) -> Value {
        let query = original.query.as_deref();
        let received = rules_request(&original.method, rest, query, headers, body);
        let resource = original.resource_type.as_deref().zip(original.resource_id.as_deref());
        let normalized = match self
            .apply_rules(route, profile, &received, headers, resource, patience)
            .await
        {
            Ok((_, normalized)) => normalized,
            Err(refused) => {
                return json!({
                    "refused": {"rule": "pacing", "status": 429, "detail": refused.detail}
                })
            }
        };
        let normalized = match normalized {
            Ok(normalized) => normalized,
            Err(refusal) => {
                return json!({
                    "refused": {"rule": refusal.rule, "status": refusal.error.status, "detail": refusal.error.detail}
                })
            }
        };
        let to_send = normalized.value;
        let describe = |request: &scimtrail_rules::Request| {
            let mut uri = format!("{}{}", route.upstream.to_string().trim_end_matches('/'), request.path);
            if let Some(query) = &request.query {
                uri.push('?');
                uri.push_str(query);
            }
            json!({"method": request.method, "url": uri, "body": request.body})
        };
        let sent_before: Option<Value> = original
            .forwarded_body
            .as_deref()
            .or(original.request_body.as_deref())
            .and_then(|b| serde_json::from_str(b).ok());
        let mut from_sent = Vec::new();
        diff(
            "",
            sent_before.as_ref().unwrap_or(&Value::Null),
            to_send.body.as_ref().unwrap_or(&Value::Null),
            &mut from_sent,
        );
        let mut preview = json!({
            "send": std::iter::once(&to_send).chain(&to_send.then).map(describe).collect::<Vec<_>>(),
            "rules": normalized.changes.iter().map(|c| c.rule.clone()).collect::<Vec<_>>(),
            "rules_version": profile.version(),
            "diff_from_sent": from_sent,
        });
        let current = current.map(|resource| {
            let mut resource = resource.clone();
            route.redaction.redact(&mut resource);
            resource
        });
        if let (Some(current), Some(rt)) = (current.as_ref(), resource_type) {
            let after = match to_send.method.as_str() {
                "PATCH" => {
                    std::iter::once(&to_send)
                        .chain(&to_send.then)
                        .try_fold(current.clone(), |mut resource, part| {
                            let body = part.body.clone().unwrap_or(Value::Null);
                            PatchRequest::from_json(&body)
                                .and_then(|patch| patch.apply(&mut resource, rt))
                                .map(|()| resource)
                                .map_err(|error| error.to_scim_error().detail)
                        })
                }
                "PUT" => Ok(put_result(current, to_send.body.as_ref())),
                _ => Err(String::new()),
            };
            match after {
                Ok(after) => {
                    let mut changes = Vec::new();
                    diff("", &without_meta(current), &without_meta(&after), &mut changes);
                    preview["diff_from_current"] = Value::Array(changes);
                }
                Err(detail) if !detail.is_empty() => {
                    preview["diff_from_current"] =
                        json!({"error": format!("would not apply to the resource as it is now: {detail}")});
                }
                Err(_) => {}
            }
        }
        preview
    }
}

/// What of a recorded request a replay leaves out (see `plan::Step::Send`).
#[derive(Debug, Clone, Copy, Default)]
struct LeftOut<'a> {
    operations: &'a [usize],
    members: &'a [(usize, Vec<String>)],
}

/// Why an exchange is not sent: the kind, and the reason in words.
type SkipReason = (&'static str, String);

/// The request body to send again: without the left-out PATCH operations, and without what
/// was redacted when recorded (passwords, the route's `redact_attributes`). `Err` with the
/// skip kind and reason when nothing sendable is left, or when leaving a redacted attribute
/// out would clear it (a PUT replaces the whole resource).
fn replay_body(
    original: &Exchange,
    leave_out: LeftOut<'_>,
    redaction: &Redaction,
) -> Result<(Option<Value>, Vec<String>), SkipReason> {
    let left_out = leave_out.operations;
    let Some(text) = original.request_body.as_deref() else {
        return Ok((None, Vec::new()));
    };
    if text == scimtrail_store::ERASED {
        return Err((
            "not_replayable",
            "its record was erased (scimtrail store erase): send it again from the IdP".to_owned(),
        ));
    }
    let mut body: Value = serde_json::from_str(text).map_err(|_| {
        (
            "not_replayable",
            "its body was not JSON, or held a password and was redacted whole".to_owned(),
        )
    })?;
    let mut notes = Vec::new();
    if !left_out.is_empty() && original.operation != "bulk" {
        if let Some(ops) = body
            .as_object_mut()
            .and_then(|members| scim_json::get_mut(members, "Operations"))
            .and_then(Value::as_array_mut)
        {
            for (index, ids) in leave_out.members {
                if let Some(op) = ops.get_mut(*index) {
                    without_members(op, ids);
                }
            }
            let mut index = 0;
            ops.retain(|_| {
                let keep = !left_out.contains(&index);
                index += 1;
                keep
            });
        }
    }
    if original.operation == "bulk" {
        without_bulk_operations(&mut body, left_out, original.bulk_operations.as_ref());
    }
    let cleared = puts_clearing(original, &body, redaction);
    if !cleared.is_empty() {
        return Err((
            "not_replayable",
            format!(
                "{} {} not stored ([route.record] redact_attributes), and a PUT without {} would clear {} at the application: send it again from the IdP",
                cleared.join(", "),
                if cleared.len() == 1 { "is" } else { "are" },
                if cleared.len() == 1 { "it" } else { "them" },
                if cleared.len() == 1 { "it" } else { "them" },
            ),
        ));
    }
    let left_out_attributes = redaction.strip_redacted(&mut body);
    for attribute in &left_out_attributes {
        notes.push(if attribute == "password" {
            "the password was redacted when recorded and is left out: set it again from the IdP".to_owned()
        } else {
            format!("{attribute} is not stored ([route.record] redact_attributes) and is left out: set it again from the IdP")
        });
    }
    let empty_patch = original.method == "PATCH" && scimtrail_scim::write_keys::operations(Some(&body)).is_empty();
    if empty_patch {
        return Err((
            "nothing_to_send",
            format!(
                "nothing is left to send once the redacted {} left out",
                match left_out_attributes.as_slice() {
                    [one] if one == "password" => "password is".to_owned(),
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            ),
        ));
    }
    Ok((Some(body), notes))
}

/// The redacted attributes (not passwords) a PUT in `body` — the request itself, or a bulk
/// operation — would leave out, and so clear.
fn puts_clearing(original: &Exchange, body: &Value, redaction: &Redaction) -> Vec<String> {
    let chosen = |resource: Option<&Value>| {
        let mut resource = resource.cloned().unwrap_or(Value::Null);
        let mut left_out = redaction.strip_redacted(&mut resource);
        left_out.retain(|attribute| attribute != "password");
        left_out
    };
    if original.method.eq_ignore_ascii_case("PUT") {
        return chosen(Some(body));
    }
    if original.operation != "bulk" {
        return Vec::new();
    }
    let mut cleared: Vec<String> = Vec::new();
    let operations = body.get("Operations").and_then(Value::as_array).into_iter().flatten();
    for operation in operations.filter(|o| o["method"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("PUT"))) {
        for attribute in chosen(operation.get("data")) {
            if !cleared.contains(&attribute) {
                cleared.push(attribute);
            }
        }
    }
    cleared
}

/// A bulk request without the operations at `left_out`, with `bulkId:` references to the
/// ones that took effect (`recorded`) replaced by the ids they created; references to the
/// ones sent again stay, for the application to resolve.
fn without_bulk_operations(body: &mut Value, left_out: &[usize], recorded: Option<&Value>) {
    let created: HashMap<String, String> = recorded
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o["outcome"] == "ok")
        .filter_map(|o| {
            let bulk_id = o["bulkId"].as_str()?;
            let id = o["location"].as_str()?.trim_end_matches('/').rsplit('/').next()?;
            Some((bulk_id.to_owned(), id.to_owned()))
        })
        .collect();
    let Some(operations) = body
        .as_object_mut()
        .and_then(|members| scim_json::get_mut(members, "Operations"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let mut index = 0;
    operations.retain(|_| {
        let keep = !left_out.contains(&index);
        index += 1;
        keep
    });
    for operation in operations.iter_mut() {
        resolve_bulk_ids(operation, &created);
    }
}

/// Takes the members `ids` (lowercase) out of a member operation's value: `path: members`
/// with a value array or object, or a path-less value's `members`.
fn without_members(operation: &mut Value, ids: &[String]) {
    let gone = |member: &Value| {
        member
            .get("value")
            .and_then(Value::as_str)
            .is_some_and(|id| ids.contains(&id.to_lowercase()))
    };
    let Some(members) = operation.as_object_mut() else {
        return;
    };
    let Some(value) = scim_json::get_mut(members, "value") else {
        return;
    };
    let list = match value {
        Value::Object(object) if object.contains_key("value") => {
            if gone(value) {
                *value = Value::Array(Vec::new());
            }
            return;
        }
        Value::Object(object) => scim_json::get_mut(object, "members"),
        other => Some(other),
    };
    if let Some(Value::Array(items)) = list {
        items.retain(|member| !gone(member));
    }
}

fn replay_request(original: &Exchange, headers: HeaderMap, body: Bytes) -> Result<Request<Full<Bytes>>, String> {
    let mut uri = original.path.clone();
    if let Some(query) = &original.query {
        uri.push('?');
        uri.push_str(query);
    }
    let method = http::Method::from_bytes(original.method.as_bytes())
        .map_err(|_| format!("the recorded method {} is not valid", original.method))?;
    let mut request = Request::builder()
        .method(method)
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|error| format!("the recorded request to {uri} cannot be rebuilt: {error}"))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// A resource after a PUT of `body`: the PUT's attributes, with what the application owns
/// (`id`, `meta`, read-only `groups`) kept.
fn put_result(current: &Value, body: Option<&Value>) -> Value {
    let mut after = body.cloned().unwrap_or_else(|| json!({}));
    if let (Some(after), Some(current)) = (after.as_object_mut(), current.as_object()) {
        for owned in ["id", "meta", "groups"] {
            if let Some(value) = current.get(owned) {
                after.insert(owned.to_owned(), value.clone());
            }
        }
    }
    after
}

fn without_meta(resource: &Value) -> Value {
    let mut resource = resource.clone();
    if let Some(members) = resource.as_object_mut() {
        members.remove("meta");
    }
    resource
}

/// The differences from `before` to `after`, as JSON pointers with both values; objects are
/// compared member by member, anything else whole.
fn diff(at: &str, before: &Value, after: &Value, out: &mut Vec<Value>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut names: Vec<&String> = b.keys().chain(a.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
                diff(
                    &pointer,
                    b.get(name).unwrap_or(&Value::Null),
                    a.get(name).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        // Multi-valued attributes keyed by `value` (members, emails…): element by element, so
        // that one member more is one line, not the whole list twice.
        (Value::Array(b), Value::Array(a)) if keyed_by_value(b) && keyed_by_value(a) && before != after => {
            let key = |v: &Value| v["value"].as_str().map(str::to_owned);
            for gone in b.iter().filter(|x| !a.iter().any(|y| key(y) == key(x))) {
                let pointer = format!("{at}[value eq {}]", gone["value"]);
                out.push(json!({"pointer": pointer, "before": gone, "after": null}));
            }
            for new in a.iter().filter(|y| !b.iter().any(|x| key(x) == key(y))) {
                let pointer = format!("{at}[value eq {}]", new["value"]);
                out.push(json!({"pointer": pointer, "before": null, "after": new}));
            }
        }
        _ if before != after => out.push(json!({"pointer": at, "before": before, "after": after})),
        _ => {}
    }
}

fn keyed_by_value(items: &[Value]) -> bool {
    items.iter().all(|item| item.get("value").is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_each_changed_member() {
        let mut out = Vec::new();
        diff(
            "",
            &json!({"a": 1, "n": {"g": "x", "f": "y"}, "gone": true}),
            &json!({"a": 1, "n": {"g": "z", "f": "y"}, "new": [1]}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                json!({"pointer": "/gone", "before": true, "after": null}),
                json!({"pointer": "/n/g", "before": "x", "after": "z"}),
                json!({"pointer": "/new", "before": null, "after": [1]}),
            ]
        );
    }

    #[test]
    fn members_differ_one_by_one() {
        let mut out = Vec::new();
        diff(
            "",
            &json!({"members": [{"value": "a"}, {"value": "b"}]}),
            &json!({"members": [{"value": "b"}, {"value": "c"}]}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                json!({"pointer": "/members[value eq \"a\"]", "before": {"value": "a"}, "after": null}),
                json!({"pointer": "/members[value eq \"c\"]", "before": null, "after": {"value": "c"}}),
            ]
        );
    }

    #[test]
    fn members_changed_later_are_taken_out_of_a_member_operation() {
        let mut op = json!({"op": "add", "path": "members", "value": [{"value": "A"}, {"value": "b"}]});
        without_members(&mut op, &["a".to_owned()]);
        assert_eq!(op["value"], json!([{"value": "b"}]));
        let mut pathless = json!({"op": "add", "value": {"members": [{"value": "a"}, {"value": "c"}]}});
        without_members(&mut pathless, &["a".to_owned()]);
        assert_eq!(pathless["value"], json!({"members": [{"value": "c"}]}));
    }

    #[test]
    fn a_password_only_patch_has_nothing_to_replay() {
        let original = Exchange {
            method: "PATCH".into(),
            request_body: Some(
                json!({"Operations": [{"op": "replace", "path": "password", "value": "[REDACTED]"}]}).to_string(),
            ),
            ..Exchange::default()
        };
        assert_eq!(
            replay_body(&original, LeftOut::default(), &Redaction::passwords_only())
                .unwrap_err()
                .0,
            "nothing_to_send"
        );
    }

    #[test]
    fn left_out_operations_and_passwords_are_taken_out() {
        let original = Exchange {
            method: "PATCH".into(),
            request_body: Some(
                json!({"Operations": [
                    {"op": "replace", "path": "title", "value": "a"},
                    {"op": "replace", "value": {"active": false, "password": "[REDACTED]"}}
                ]})
                .to_string(),
            ),
            ..Exchange::default()
        };
        let leave_out = LeftOut {
            operations: &[0],
            members: &[],
        };
        let (body, notes) = replay_body(&original, leave_out, &Redaction::passwords_only()).unwrap();
        assert_eq!(
            body.unwrap(),
            json!({"Operations": [{"op": "replace", "value": {"active": false}}]})
        );
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn redacted_attributes_are_left_out_of_a_patch_and_refuse_a_put() {
        let phones = Redaction::new(&["phoneNumbers".to_owned()]).unwrap();
        let patch = Exchange {
            method: "PATCH".into(),
            request_body: Some(
                json!({"Operations": [
                    {"op": "replace", "path": "phoneNumbers[type eq \"[REDACTED]\"].value", "value": "[REDACTED]"},
                    {"op": "replace", "value": {"active": false, "phoneNumbers": "[REDACTED]"}}
                ]})
                .to_string(),
            ),
            ..Exchange::default()
        };
        let (body, notes) = replay_body(&patch, LeftOut::default(), &phones).unwrap();
        assert_eq!(
            body.unwrap(),
            json!({"Operations": [{"op": "replace", "value": {"active": false}}]})
        );
        assert_eq!(
            notes,
            ["phoneNumbers is not stored ([route.record] redact_attributes) and is left out: set it again from the IdP"]
        );
        let put = Exchange {
            method: "PUT".into(),
            request_body: Some(
                json!({"userName": "a", "phoneNumbers": "[REDACTED]", "password": "[REDACTED]"}).to_string(),
            ),
            ..Exchange::default()
        };
        let (kind, reason) = replay_body(&put, LeftOut::default(), &phones).unwrap_err();
        assert_eq!(kind, "not_replayable");
        assert!(reason.starts_with("phoneNumbers is not stored"), "{reason}");
        // Without phone numbers in it, the same PUT goes, the password left out.
        let put = Exchange {
            request_body: Some(json!({"userName": "a", "password": "[REDACTED]"}).to_string()),
            ..put
        };
        assert_eq!(
            replay_body(&put, LeftOut::default(), &phones).unwrap().0.unwrap(),
            json!({"userName": "a"})
        );
        let bulk = Exchange {
            method: "POST".into(),
            operation: "bulk".into(),
            request_body: Some(
                json!({"Operations": [{"method": "PUT", "path": "/Users/1", "data": {"userName": "a", "phoneNumbers": "[REDACTED]"}}]})
                    .to_string(),
            ),
            ..Exchange::default()
        };
        assert_eq!(
            replay_body(&bulk, LeftOut::default(), &phones).unwrap_err().0,
            "not_replayable"
        );
    }

    #[test]
    fn an_erased_record_is_not_replayable_and_says_why() {
        let erased = Exchange {
            method: "PATCH".into(),
            request_body: Some(scimtrail_store::ERASED.into()),
            ..Exchange::default()
        };
        let (kind, reason) = replay_body(&erased, LeftOut::default(), &Redaction::passwords_only()).unwrap_err();
        assert_eq!(kind, "not_replayable");
        assert!(reason.contains("erased"), "{reason}");
    }
}
