//! Repair: the writes that restore the IdP's intent (planned by `scimtrail_intent::repair`),
//! sent through the route's exchange path with its *current* rules and credentials, each
//! recorded as an exchange linked to its run (`reconcile_of`) — which the intent does not fold:
//! a repair restores intent, it states none — and kept with the run, sent or (dry) planned.
//!
//! Safe by construction: a repair is planned from the resource just read and the intent just
//! folded; a resource the IdP is writing now, or wrote moments ago, is skipped (the intent it
//! would restore may be the one the IdP is changing); a leaver with access is deactivated,
//! never deleted. A resource the application lost is created again, and the application's new
//! id for it kept as an alias of the IdP's, so that later runs compare it, and the groups it
//! is a member of, with what the IdP intended.

use super::Found;
use crate::exchange::{Link, Origin};
use crate::pacing::Patience;
use crate::{Proxy, Route};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use scimtrail_intent::drift::text_at;
use scimtrail_intent::written::BY_NAME;
use scimtrail_intent::{Intended, Repair};
use scimtrail_store::{IntentAlias, RepairRecord, StoreError};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

/// Whether a run repairs what drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repairing {
    /// Only report.
    #[default]
    No,
    /// Keep the writes that would restore the intent; send none.
    DryRun,
    /// Send them.
    Send,
}

/// The address a repair is recorded as coming from: the proxy itself.
const REPAIR_PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// The repairs of a run so far.
pub(super) struct Repairs {
    mode: Repairing,
    /// The number of the next repair kept.
    next: i64,
    /// How many of each outcome.
    outcomes: BTreeMap<&'static str, u64>,
}

impl Repairs {
    pub(super) fn new(mode: Repairing) -> Repairs {
        Repairs {
            mode,
            next: 0,
            outcomes: BTreeMap::new(),
        }
    }

    /// Whether the run plans repairs at all.
    pub(super) fn wanted(&self) -> bool {
        self.mode != Repairing::No
    }

    /// What the repair did, as the run keeps it; `None` when the run did not repair.
    pub(super) fn summary(&self) -> Option<Value> {
        self.wanted().then(|| {
            json!({
                "dry_run": self.mode == Repairing::DryRun,
                "writes": self.next,
                "outcomes": self.outcomes,
            })
        })
    }
}

/// The application's ids of resources the IdP knows by others (see the module's
/// documentation), both ways, by resource type and lower-case id.
#[derive(Debug, Default)]
pub(super) struct Aliases {
    to_app: HashMap<(String, String), String>,
    to_idp: HashMap<(String, String), String>,
}

impl Aliases {
    pub(super) fn of(aliases: Vec<IntentAlias>) -> Aliases {
        let mut all = Aliases::default();
        for alias in aliases {
            all.add(alias);
        }
        all
    }

    fn add(&mut self, alias: IntentAlias) {
        let key = |id: &str| (alias.resource_type.clone(), id.to_lowercase());
        self.to_app.insert(key(&alias.resource_id), alias.app_id.clone());
        self.to_idp.insert(key(&alias.app_id), alias.resource_id.clone());
    }

    /// The IdP's id of the application's `app_id`, when a repair created it again.
    pub(super) fn idp_id(&self, resource_type: &str, app_id: &str) -> Option<&String> {
        self.to_idp.get(&(resource_type.to_owned(), app_id.to_lowercase()))
    }

    /// `intended` with its members as the application knows them.
    pub(super) fn as_the_application_knows(&self, mut intended: Intended) -> Intended {
        if let Some(members) = intended.members.as_mut() {
            *members = std::mem::take(members)
                .into_iter()
                .map(|(lower, id)| {
                    let app_id = ["Users", "Groups"]
                        .iter()
                        .find_map(|t| self.to_app.get(&((*t).to_owned(), lower.clone())));
                    match app_id {
                        Some(app_id) => (app_id.to_lowercase(), app_id.clone()),
                        None => (lower, id),
                    }
                })
                .collect();
        }
        intended
    }
}

impl Proxy {
    /// Sends `repair` (or keeps it planned, on a dry run) and keeps what became of it with the
    /// run; `app_id` is the application's id of the resource, when it has it.
    pub(super) async fn repair(
        &self,
        route: &Route,
        repair: Repair,
        app_id: Option<&str>,
        found: &mut Found<'_>,
    ) -> Result<(), StoreError> {
        let record = match found.repairs.mode {
            Repairing::No => return Ok(()),
            Repairing::DryRun => RepairRecord {
                repair,
                outcome: "planned".to_owned(),
                status: None,
                exchange_id: None,
                reason: None,
            },
            Repairing::Send => {
                self.send_repair(route, &found.run, repair, app_id, &mut found.aliases)
                    .await?
            }
        };
        self.store
            .add_reconciliation_repair(&found.run, found.repairs.next, &record)
            .await?;
        found.repairs.next += 1;
        let outcome = match record.outcome.as_str() {
            "planned" => "planned",
            "ok" => "ok",
            "skipped" => "skipped",
            _ => "failed",
        };
        *found.repairs.outcomes.entry(outcome).or_default() += 1;
        Ok(())
    }

    async fn send_repair(
        &self,
        route: &Route,
        run: &str,
        repair: Repair,
        app_id: Option<&str>,
        aliases: &mut Aliases,
    ) -> Result<RepairRecord, StoreError> {
        let mut record = RepairRecord {
            repair,
            outcome: "skipped".to_owned(),
            status: None,
            exchange_id: None,
            reason: None,
        };
        let repair = &record.repair;
        let ids: Vec<&str> = [Some(repair.resource_id.as_str()), app_id]
            .into_iter()
            .flatten()
            .collect();
        if self
            .store
            .writes_pending_for(&route.name, &repair.resource_type, &ids)
            .await?
        {
            record.reason = Some(
                "the IdP is writing this resource now, or wrote it moments ago: the intent may be changing, so it is left to the next run"
                    .to_owned(),
            );
            return Ok(record);
        }
        let request = match repair_request(route, repair) {
            Ok(request) => request,
            Err(reason) => {
                record.outcome = "failed".to_owned();
                record.reason = Some(reason);
                return Ok(record);
            }
        };
        let link = Link {
            reconcile_of: Some(run.to_owned()),
            ..Link::default()
        };
        let origin = Origin {
            peer: SocketAddr::from(REPAIR_PEER),
            scheme: "http",
        };
        let mut patience = Patience::unattended();
        let sent = self.run_exchange(request, origin, link, &mut patience).await;
        let status = sent.response.status();
        record.status = Some(i64::from(status.as_u16()));
        record.exchange_id = Some(sent.id.clone());
        if sent.outcome != "ok" {
            record.outcome = "failed".to_owned();
            record.reason = Some(format!("the application answered {status} (outcome {})", sent.outcome));
            return Ok(record);
        }
        record.outcome = "ok".to_owned();
        if record.repair.method == "POST" && !record.repair.resource_id.starts_with(BY_NAME) {
            let location = sent.response.headers().get(LOCATION).cloned();
            let body = sent.response.into_body().collect().await.map(|b| b.to_bytes()).ok();
            match created_id(body.as_deref(), location.as_ref()) {
                Some(app_id) => {
                    let alias = IntentAlias {
                        resource_type: record.repair.resource_type.clone(),
                        resource_id: record.repair.resource_id.clone(),
                        app_id,
                    };
                    self.store.add_intent_alias(&route.name, &alias, &sent.id).await?;
                    aliases.add(alias);
                }
                None => record.reason = Some(
                    "created, but the application's answer gave no id: the next run finds it by its name only if the IdP's create had one"
                        .to_owned(),
                ),
            }
        }
        Ok(record)
    }
}

/// The request a repair sends, as the IdP would have sent it to the route.
fn repair_request(route: &Route, repair: &Repair) -> Result<Request<Full<Bytes>>, String> {
    let uri = format!("{}{}", route.path_prefix.trim_end_matches('/'), repair.path);
    let method = http::Method::from_bytes(repair.method.as_bytes())
        .map_err(|_| format!("{} is not a method a repair sends", repair.method))?;
    let mut request = Request::builder()
        .method(method)
        .uri(&uri)
        .body(Full::new(Bytes::from(repair.body.to_string())))
        .map_err(|error| format!("the repair to {uri} cannot be built: {error}"))?;
    let scim_json = HeaderValue::from_static("application/scim+json");
    request.headers_mut().insert(CONTENT_TYPE, scim_json.clone());
    request.headers_mut().insert(ACCEPT, scim_json);
    Ok(request)
}

/// The id the application gave a resource it created: its answer's `id`, else the last
/// segment of its `Location`.
fn created_id(body: Option<&[u8]>, location: Option<&HeaderValue>) -> Option<String> {
    let from_body = body
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .and_then(|b| text_at(&b, "id"));
    from_body.or_else(|| {
        let location = location?.to_str().ok()?;
        let path = location.split(['?', '#']).next()?;
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        let decoded = String::from_utf8(crate::path_safety::percent_decode(last.as_bytes())?).ok()?;
        (!decoded.is_empty()).then_some(decoded)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_created_resources_id_comes_from_its_answer_else_its_location() {
        let location = HeaderValue::from_static("https://app.test/scim/Users/a%20b/");
        /// (the answer's body, its Location, the id)
        type Case<'a> = (Option<&'a [u8]>, Option<&'a HeaderValue>, Option<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (Some(br#"{"id": "u9"}"#), Some(&location), Some("u9")),
            (Some(b""), Some(&location), Some("a b")),
            (None, None, None),
            (Some(b"<html>"), None, None),
        ];
        for (body, location, expected) in cases {
            assert_eq!(created_id(body, location).as_deref(), expected, "{body:?} {location:?}");
        }
    }

    #[test]
    fn a_groups_members_are_compared_by_the_ids_the_application_gave_them_again() {
        let aliases = Aliases::of(vec![IntentAlias {
            resource_type: "Users".into(),
            resource_id: "OLD".into(),
            app_id: "New".into(),
        }]);
        let intended = Intended {
            resource_type: "Groups".into(),
            members: Some(BTreeMap::from([
                ("old".to_owned(), "OLD".to_owned()),
                ("u2".to_owned(), "u2".to_owned()),
            ])),
            ..Intended::default()
        };
        let known = aliases.as_the_application_knows(intended);
        assert_eq!(
            known.members,
            Some(BTreeMap::from([
                ("new".to_owned(), "New".to_owned()),
                ("u2".to_owned(), "u2".to_owned()),
            ]))
        );
        assert_eq!(aliases.idp_id("Users", "NEW").map(String::as_str), Some("OLD"));
        assert_eq!(aliases.idp_id("Groups", "new"), None);
    }
}
