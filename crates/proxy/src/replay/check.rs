//! The checks before a replay is sent: against the configuration (its route, profile and
//! credentials), against the store (a create made again later, a bulk request's operations
//! that took effect or were written over) and against the application (a create whose
//! resource exists, a write to a resource that is gone).

use super::rebuild::{Rebuilt, SkipReason};
use crate::pacing::Patience;
use crate::path_safety::{self, PathCheck};
use crate::{state, Proxy, Route};
use http::HeaderMap;
use scimtrail_rules::Profile;
use scimtrail_scim::json as scim_json;
use scimtrail_store::{Exchange, StoreError};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;

/// Why an item goes no further: skipped (nothing to send), or failed (it cannot be replayed,
/// or could not be checked).
pub(super) enum Stop {
    Skip(SkipReason),
    Fail(SkipReason),
}

impl Stop {
    fn store(error: StoreError) -> Stop {
        Stop::Fail(("check_failed", format!("the store could not be read: {error}")))
    }
}

/// Where a replay goes: its route, the route's profile taken once for the whole replay (the
/// dry run previews with it, and the replay's exchange runs it; a reload meanwhile reaches
/// the next one), and the path as admission read it.
pub(super) struct Target<'a> {
    pub(super) route: &'a Route,
    pub(super) profile: Arc<Profile>,
    pub(super) path: String,
}

/// Creates sent (or, in a dry run, that would be) in this run, by endpoint, attribute and
/// value (lowercase): a second create of the same resource is skipped even before the
/// application is asked.
pub(super) type Created = HashSet<(String, String, String)>;

impl Proxy {
    /// Whether the configuration can replay `original`: its route is still configured and
    /// still serves its path, the route's profile is in force, and the route has credentials
    /// of its own when the IdP's were recorded as a fingerprint only.
    pub(super) fn target_of(&self, original: &Exchange) -> Result<Target<'_>, Stop> {
        let Some(route) = self.route_named(original.begun.route.as_deref()) else {
            let route = original.begun.route.as_deref().unwrap_or("-");
            return Err(Stop::Fail((
                "no_route",
                format!("route {route} is not in the configuration any more"),
            )));
        };
        let Some(profile) = self.profiles.of(route) else {
            return Err(Stop::Fail((
                "no_profile",
                format!(
                    "route {} names profile {}, which is not among the profiles in force",
                    route.name, route.idp
                ),
            )));
        };
        // As admission read the path: empty segments collapsed (a path it refused was never
        // forwarded, so is not replayed).
        let path = match path_safety::check(&original.begun.path) {
            PathCheck::Collapsed(collapsed) => collapsed,
            PathCheck::Clean | PathCheck::Refused(_) => original.begun.path.clone(),
        };
        if self.route_for(&path).map(|r| r.name.as_str()) != Some(route.name.as_str()) {
            return Err(Stop::Fail((
                "no_route",
                format!("{} is no longer served by route {}", original.begun.path, route.name),
            )));
        }
        // The IdP's credentials were recorded as a fingerprint only: without credentials of
        // its own, the route cannot authenticate a replay.
        let had_credentials = original.begun.request_headers.as_array().is_some_and(|pairs| {
            pairs
                .iter()
                .any(|p| p[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case("authorization")))
        });
        if had_credentials && route.upstream_auth.is_none() {
            return Err(Stop::Fail((
                "no_credentials",
                format!(
                    "route {} has no upstream_auth, and the IdP's credentials were not recorded: configure upstream_auth to replay",
                    route.name
                ),
            )));
        }
        Ok(Target { route, profile, path })
    }

    /// Against the store: the operations to leave out (`left_out`, the plan's; for a bulk
    /// request, those that took effect or were written over later), with notes; a create the
    /// IdP made again later is superseded.
    pub(super) async fn check_store(
        &self,
        original: &Exchange,
        earlier: &[Exchange],
        route: &Route,
        left_out: &[usize],
        notes: &mut Vec<String>,
    ) -> Result<Vec<usize>, Stop> {
        let mut left_out = left_out.to_vec();
        if original.begun.operation == "bulk" {
            match self
                .bulk_left_out(original, earlier, route)
                .await
                .map_err(Stop::store)?
            {
                Ok((out, bulk_notes)) => {
                    left_out = out;
                    notes.extend(bulk_notes);
                }
                Err(skip) => return Err(Stop::Skip(skip)),
            }
        }
        if original.begun.operation == "create" {
            if let Some(reason) = self.created_again_later(original, route).await.map_err(Stop::store)? {
                return Err(Stop::Skip(("superseded", reason)));
            }
        }
        Ok(left_out)
    }

    /// Against the application, for what it has now: a create must not make a second
    /// resource; a write to a resource that is gone would only fail. The resource as it is,
    /// for a write to one.
    pub(super) async fn check_application(
        &self,
        route: &Route,
        original: &Exchange,
        rebuilt: &Rebuilt,
        created: &mut Created,
        patience: &mut Patience,
    ) -> Result<Option<Value>, Stop> {
        let (rest, headers) = (&rebuilt.rest, &rebuilt.headers);
        if original.begun.operation == "create" {
            return match self
                .existing(route, headers, rest, rebuilt.body.as_ref(), created, patience)
                .await
            {
                Ok(None) => Ok(None),
                Ok(Some(skip)) => Err(Stop::Skip(skip)),
                Err(reason) => Err(Stop::Fail(("check_failed", reason))),
            };
        }
        if original.begun.resource_id.is_none() {
            return Ok(None);
        }
        match state::read(&self.upstream, route, headers, rest, patience).await {
            Ok(Some(resource)) => Ok(Some(resource)),
            Ok(None) => {
                let reason = if original.begun.method == "DELETE" {
                    "already gone: the application has no such resource".to_owned()
                } else {
                    format!("the application has no resource at {rest} any more")
                };
                Err(Stop::Skip(("gone_upstream", reason)))
            }
            Err(reason) => Err(Stop::Fail((
                "check_failed",
                format!("could not read the resource: {reason}"),
            ))),
        }
    }

    /// For a create: why it is superseded, when the IdP created the same user (userName) or
    /// group (displayName) again later and that succeeded — the retry of a create that
    /// failed; replaying the first would make a second resource, or bring back one deleted
    /// since.
    async fn created_again_later(&self, original: &Exchange, route: &Route) -> Result<Option<String>, StoreError> {
        let Some(resource_type) = original.begun.resource_type.as_deref() else {
            return Ok(None);
        };
        let body: Option<Value> = original
            .begun
            .request_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok());
        let (attribute, name) = if resource_type == "Groups" {
            (
                "displayName",
                body.as_ref().and_then(|b| b.get("displayName")).and_then(Value::as_str),
            )
        } else {
            ("userName", original.begun.user_name.as_deref())
        };
        let Some(name) = name else { return Ok(None) };
        let user_name = (resource_type != "Groups").then_some(name);
        let later = self
            .store
            .later_creates(&route.name, resource_type, &original.begun.id, user_name)
            .await?;
        // A replay stands where its original stands: the replay of an earlier create is not a
        // later one.
        let again = later.iter().find(|create| {
            create.begun.replay_of.as_deref().unwrap_or(&create.begun.id) > original.begun.id.as_str()
                && (user_name.is_some()
                    || create
                        .begun
                        .request_body
                        .as_deref()
                        .and_then(|b| serde_json::from_str::<Value>(b).ok())
                        .and_then(|b| b.get("displayName").and_then(Value::as_str).map(str::to_owned))
                        .is_some_and(|later| later.eq_ignore_ascii_case(name)))
        });
        Ok(again.map(|create| {
            format!(
                "superseded: the IdP created {attribute} \"{name}\" again later, successfully ({})",
                create.begun.id
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
        let Some(recorded) = original.bulk_operations().and_then(Value::as_array) else {
            return Ok(Err((
                "not_replayable",
                "which of its bulk operations took effect is unknown (it was interrupted): send them again from the IdP, or replay the operations one by one".to_owned(),
            )));
        };
        let done_in_a_replay = |op: &Value| {
            replays.iter().any(|replay| {
                replay.bulk_operations().and_then(Value::as_array).is_some_and(|ops| {
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
                    w.outcome() == "ok"
                        && w.begun.parent_id.as_deref() != Some(original.begun.id.as_str())
                        && w.begun.replay_of.as_deref().unwrap_or(&w.begun.id) > original.begun.id.as_str()
                });
                // Or pruned since, as the resource's summary keeps it (this request's operations
                // stand where it stands).
                let later = match later {
                    Some(later) => Some(later.begun.id.clone()),
                    None => self
                        .store
                        .resource_writes(&route.name, resource_type, id)
                        .await?
                        .into_iter()
                        .find(|w| w.stands_at.as_str() > original.begun.id.as_str())
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

    /// For a create: the reason to skip it when its resource exists already (upstream, or
    /// created earlier in this run), `None` to send it.
    async fn existing(
        &self,
        route: &Route,
        headers: &HeaderMap,
        endpoint: &str,
        body: Option<&Value>,
        created: &mut Created,
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
}
