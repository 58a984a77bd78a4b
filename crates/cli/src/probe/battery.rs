//! The probes, in order: each sends its requests, keeps them as evidence, and sets what it
//! learnt in [`Observations`]. A probe that cannot tell leaves its observation `None` and
//! says why; the battery goes on.

use super::client::{encode, App, Reply, PREFIX};
use scimtrail_rules::probe::{
    AfterDeactivate, AfterDelete, ArrayRemoval, BulkAdvertised, Etags, Evidence, FilterCheck, Observations, Probe,
    StringBoolean, Uniqueness, FILTER_ATTRIBUTES, FILTER_OPERATORS,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const SCIM_JSON: &str = "application/scim+json";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One of the two users the probes work on.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    /// `alpha` or `bravo`.
    who: &'static str,
}

/// The battery's state: the application, what was seen, the evidence, what could not be told.
pub(crate) struct Battery {
    pub(crate) app: App,
    /// `scimtrail-probe-1a2b3c4d`: every name this run gives starts so.
    pub(crate) run: String,
    pub(crate) seen: Observations,
    pub(crate) evidence: BTreeMap<Probe, Vec<Evidence>>,
    /// Why a probe could not tell.
    pub(crate) errors: BTreeMap<Probe, String>,
    /// The media type writes are sent with: the first one accepted.
    content_type: &'static str,
    advertised: Value,
}

impl Battery {
    pub(crate) fn new(app: App, run: String) -> Battery {
        Battery {
            app,
            run,
            seen: Observations::default(),
            evidence: BTreeMap::new(),
            errors: BTreeMap::new(),
            content_type: SCIM_JSON,
            advertised: Value::Null,
        }
    }

    /// Sends a request for `probe`, keeping it as evidence.
    async fn send(&mut self, probe: Probe, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, String> {
        self.send_with(probe, method, path, body, self.content_type, &[]).await
    }

    async fn send_with(
        &mut self,
        probe: Probe,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let reply = self.app.send(method, path, content_type, body, extra).await;
        let evidence = self.app.evidence(method, path, &reply);
        self.evidence.entry(probe).or_default().push(evidence);
        reply
    }

    fn cannot_tell(&mut self, probe: Probe, why: impl Into<String>) {
        self.errors.entry(probe).or_insert_with(|| why.into());
    }

    /// Runs every probe. An error is returned only when the probe cannot go on at all (no
    /// user could be created); what was created is the caller's to clean up either way.
    pub(crate) async fn run(&mut self) -> Result<(), String> {
        self.discovery().await;
        let (alpha, bravo) = self.content_types().await?;
        self.filters(&alpha, &bravo).await;
        self.paging().await;
        self.sorting(&alpha, &bravo).await;
        self.uniqueness(&alpha).await;
        self.patches(&alpha).await;
        self.put(&alpha).await;
        self.etags(&alpha).await;
        self.groups(&alpha, &bravo).await;
        self.bulk().await;
        self.deactivation(&bravo).await;
        self.deletion(&bravo).await;
        Ok(())
    }

    // === discovery ===

    async fn discovery(&mut self) {
        let reply = self.send(Probe::Bulk, "GET", "/ServiceProviderConfig", None).await;
        let Ok(reply) = reply.map_err(|e| self.cannot_tell(Probe::Bulk, e)) else {
            return;
        };
        if !reply.ok() {
            return;
        }
        // The same answer is the evidence of what it advertises about paging, sorting, ETags.
        if let Some(evidence) = self.evidence.get(&Probe::Bulk).and_then(|e| e.last()).cloned() {
            for probe in [Probe::Paging, Probe::Sorting, Probe::Etags] {
                self.evidence.entry(probe).or_default().push(evidence.clone());
            }
        }
        let config = reply.body;
        let number = |pointer: &str| {
            config.pointer(pointer).and_then(|v| match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
        };
        let flag = |pointer: &str| {
            config.pointer(pointer).and_then(|v| match v {
                Value::Bool(b) => Some(*b),
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
        };
        self.seen.advertised_max_results = number("/filter/maxResults").filter(|n| *n > 0);
        self.seen.sort_advertised = flag("/sort/supported");
        self.seen.bulk_advertised = flag("/bulk/supported").map(|supported| BulkAdvertised {
            supported,
            max_operations: number("/bulk/maxOperations"),
            max_payload_bytes: number("/bulk/maxPayloadSize"),
        });
        self.seen.etags = Some(Etags {
            advertised: flag("/etag/supported"),
            ..Etags::default()
        });
        self.advertised = config;
    }

    // === users ===

    fn user_name(&self, who: &str) -> String {
        format!("{}-{who}@example.com", self.run)
    }

    fn user(&self, who: &str) -> Value {
        let capital = capitalised(who);
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": self.user_name(who),
            "externalId": format!("{}-{who}", self.run),
            "displayName": format!("{} {capital}", self.run),
            "name": {"givenName": capital, "familyName": "Probe"},
            "emails": [{"value": self.user_name(who), "type": "work", "primary": true}],
            "active": true
        })
    }

    /// Creates a user with `content_type`; its id, registered for the clean-up.
    async fn create_user(&mut self, probe: Probe, body: &Value, content_type: &str) -> Result<Option<String>, String> {
        let reply = self
            .send_with(probe, "POST", "/Users", Some(body), content_type, &[])
            .await?;
        if !reply.ok() {
            return Ok(None);
        }
        let name = body["userName"].as_str().unwrap_or_default().to_owned();
        let id = match created_id(&reply) {
            Some(id) => id,
            None => self.find(probe, "Users", "userName", &name).await?.ok_or_else(|| {
                format!(
                    "the create of {name} succeeded ({}) but it cannot be found",
                    reply.status
                )
            })?,
        };
        self.app.created("Users", &id, &name)?;
        Ok(Some(id))
    }

    /// The id of the resource whose `attribute` equals `value`, by a filter.
    async fn find(
        &mut self,
        probe: Probe,
        endpoint: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Option<String>, String> {
        let filter = format!("{attribute} eq {}", json!(value));
        let reply = self
            .send(probe, "GET", &format!("/{endpoint}?filter={}", encode(&filter)), None)
            .await?;
        let wanted = value.to_owned();
        Ok(reply
            .body
            .get("Resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| {
                let field = if attribute == "userName" {
                    "userName"
                } else {
                    "displayName"
                };
                r.get(field).and_then(Value::as_str) == Some(wanted.as_str())
            })
            .and_then(|r| r.get("id").and_then(Value::as_str).map(str::to_owned)))
    }

    async fn get(&mut self, probe: Probe, endpoint: &str, id: &str) -> Result<Reply, String> {
        self.send(probe, "GET", &format!("/{endpoint}/{}", encode(id)), None)
            .await
    }

    /// The two users every later probe works on, created with each media type.
    async fn content_types(&mut self) -> Result<(Person, Person), String> {
        let probe = Probe::ContentType;
        let (alpha_body, bravo_body) = (self.user("alpha"), self.user("bravo"));
        let json_type = "application/json";
        let alpha = self.create_user(probe, &alpha_body, SCIM_JSON).await?;
        self.seen.accepts_scim_json = Some(alpha.is_some());
        let (alpha, bravo) = match alpha {
            Some(alpha) => {
                let bravo = self.create_user(probe, &bravo_body, json_type).await?;
                self.seen.accepts_json = Some(bravo.is_some());
                let bravo = match bravo {
                    Some(bravo) => bravo,
                    None => self
                        .create_user(probe, &bravo_body, SCIM_JSON)
                        .await?
                        .ok_or("a second user could not be created")?,
                };
                (alpha, bravo)
            }
            None => {
                let alpha = self.create_user(probe, &alpha_body, json_type).await?;
                self.seen.accepts_json = Some(alpha.is_some());
                let Some(alpha) = alpha else {
                    return Err(
                        "no user could be created, with application/scim+json or application/json: see the content-type evidence"
                            .to_owned(),
                    );
                };
                self.content_type = "application/json";
                let bravo = self
                    .create_user(probe, &bravo_body, json_type)
                    .await?
                    .ok_or("a second user could not be created")?;
                (alpha, bravo)
            }
        };
        if let Ok(reply) = self.get(probe, "Users", &alpha).await {
            self.seen.answers_content_type = reply.header("content-type").map(str::to_owned);
        }
        Ok((
            Person {
                id: alpha,
                who: "alpha",
            },
            Person {
                id: bravo,
                who: "bravo",
            },
        ))
    }

    // === filters ===

    /// The value of `attribute` for `who`, and the part of it that tells alpha from bravo.
    fn value_of(&self, attribute: &str, who: &str) -> (String, String) {
        match attribute {
            "userName" | "emails.value" => (self.user_name(who), format!("{who}@example.com")),
            "externalId" => (format!("{}-{who}", self.run), who.to_owned()),
            _ => {
                let capital = capitalised(who);
                (format!("{} {capital}", self.run), capital)
            }
        }
    }

    /// A filtered list: whether alpha and bravo are in it, or `None` when the answer was
    /// refused; `cut` when the page holds fewer than `totalResults`.
    async fn search(&mut self, probe: Probe, filter: &str, extra: &str) -> Result<Option<Listed>, String> {
        let path = format!("/Users?filter={}{extra}", encode(filter));
        let reply = self.send(probe, "GET", &path, None).await?;
        if !reply.ok() || (reply.body.get("Resources").is_none() && reply.total_results() != Some(0)) {
            return Ok(None);
        }
        let ids = reply.listed_ids();
        let cut = reply.total_results().is_some_and(|total| total > ids.len() as u64);
        Ok(Some(Listed { ids, cut }))
    }

    async fn filters(&mut self, alpha: &Person, bravo: &Person) {
        let mut checks = Vec::new();
        for attribute in FILTER_ATTRIBUTES {
            let (a, a_part) = self.value_of(attribute, alpha.who);
            let (b, _) = self.value_of(attribute, bravo.who);
            let q = |v: &str| json!(v).to_string();
            let prefix_len = a.len() - a_part.len() + 3;
            let start = a.get(..prefix_len).unwrap_or(&a);
            let nobody = format!("{}-nobody", self.run);
            // (operator, filters, whether alpha and bravo are expected in each)
            let cases: Vec<(&str, Vec<Expected>)> = vec![
                ("eq", vec![(format!("{attribute} eq {}", q(&a)), true, false)]),
                ("ne", vec![(format!("{attribute} ne {}", q(&a)), false, true)]),
                ("co", vec![(format!("{attribute} co {}", q(&a_part)), true, false)]),
                ("sw", vec![(format!("{attribute} sw {}", q(start)), true, false)]),
                ("ew", vec![(format!("{attribute} ew {}", q(&a_part)), true, false)]),
                ("pr", vec![(format!("{attribute} pr"), true, true)]),
                ("gt", vec![(format!("{attribute} gt {}", q(&a)), false, true)]),
                ("ge", vec![(format!("{attribute} ge {}", q(&b)), false, true)]),
                ("lt", vec![(format!("{attribute} lt {}", q(&b)), true, false)]),
                ("le", vec![(format!("{attribute} le {}", q(&a)), true, false)]),
                (
                    "and",
                    vec![
                        (
                            format!("{attribute} eq {} and {attribute} eq {}", q(&a), q(&a)),
                            true,
                            false,
                        ),
                        (
                            format!("{attribute} eq {} and {attribute} eq {}", q(&a), q(&b)),
                            false,
                            false,
                        ),
                    ],
                ),
                (
                    "or",
                    vec![
                        (
                            format!("{attribute} eq {} or {attribute} eq {}", q(&a), q(&b)),
                            true,
                            true,
                        ),
                        (
                            format!("{attribute} eq {} or {attribute} eq {}", q(&a), q(&nobody)),
                            true,
                            false,
                        ),
                    ],
                ),
                ("not", vec![(format!("not ({attribute} eq {})", q(&a)), false, true)]),
            ];
            for (operator, filters) in cases {
                let mut correct = Some(true);
                for (filter, want_a, want_b) in filters {
                    let verdict = match self.search(Probe::Filters, &filter, "&count=1000").await {
                        Err(error) => {
                            self.cannot_tell(Probe::Filters, error);
                            None
                        }
                        Ok(None) => Some(false),
                        Ok(Some(listed)) => listed.verdict(&alpha.id, want_a, &bravo.id, want_b),
                    };
                    correct = match (correct, verdict) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (None, _) | (_, None) => None,
                        _ => Some(true),
                    };
                }
                checks.push(FilterCheck {
                    attribute: attribute.to_owned(),
                    operator: operator.to_owned(),
                    correct,
                });
            }
        }
        debug_assert_eq!(checks.len(), FILTER_ATTRIBUTES.len() * FILTER_OPERATORS.len());
        let eq_works = checks
            .iter()
            .any(|c| c.attribute == "userName" && c.operator == "eq" && c.correct == Some(true));
        self.seen.filters = checks;

        // userName in another casing: found means compared without case, as RFC 7643 says.
        if !eq_works {
            self.cannot_tell(
                Probe::UserNameCase,
                "userName eq does not find the user in its own casing",
            );
            return;
        }
        let shouted = self.user_name(alpha.who).to_uppercase();
        match self
            .search(Probe::UserNameCase, &format!("userName eq {}", json!(shouted)), "")
            .await
        {
            Ok(Some(listed)) => self.seen.user_name_case_exact = Some(!listed.ids.contains(&alpha.id)),
            Ok(None) => self.cannot_tell(Probe::UserNameCase, "the search was refused"),
            Err(error) => self.cannot_tell(Probe::UserNameCase, error),
        }
    }

    // === paging and sorting ===

    async fn paging(&mut self) {
        let probe = Probe::Paging;
        match self.send(probe, "GET", "/Users?startIndex=1&count=1", None).await {
            Ok(reply) if reply.ok() => {
                self.seen.count_honoured = Some(reply.listed_ids().len() <= 1);
                self.seen.total_results = Some(reply.total_results().is_some());
            }
            Ok(reply) => self.cannot_tell(probe, format!("a list of one was answered {}", reply.status)),
            Err(error) => self.cannot_tell(probe, error),
        }
        // Asked for more than it advertises: a page cut below what it holds is its real page.
        let asked = self
            .seen
            .advertised_max_results
            .unwrap_or(1000)
            .saturating_add(1)
            .min(100_000);
        let mut reply = self
            .send(probe, "GET", &format!("/Users?startIndex=1&count={asked}"), None)
            .await;
        if matches!(&reply, Ok(r) if r.status == 400) {
            let asked = self.seen.advertised_max_results.unwrap_or(1000);
            reply = self
                .send(probe, "GET", &format!("/Users?startIndex=1&count={asked}"), None)
                .await;
        }
        match reply {
            Ok(reply) if reply.ok() => {
                let given = reply.listed_ids().len() as u64;
                if let Some(total) = reply.total_results() {
                    if given < total.min(asked) {
                        self.seen.page_cap = Some(given);
                    }
                }
            }
            Ok(reply) => self.cannot_tell(probe, format!("a large page was answered {}", reply.status)),
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    async fn sorting(&mut self, alpha: &Person, bravo: &Person) {
        let probe = Probe::Sorting;
        let filters = [
            format!("userName sw {}", json!(self.run)),
            format!(
                "userName eq {} or userName eq {}",
                json!(self.user_name(alpha.who)),
                json!(self.user_name(bravo.who))
            ),
        ];
        for filter in filters {
            match self
                .search(probe, &filter, "&sortBy=userName&sortOrder=descending")
                .await
            {
                Ok(Some(listed)) => {
                    let at = |id: &str| listed.ids.iter().position(|i| i == id);
                    if let (Some(a), Some(b)) = (at(&alpha.id), at(&bravo.id)) {
                        self.seen.sorting = Some(b < a);
                        return;
                    }
                }
                Ok(None) => {
                    // Refused with sortBy: not sorting, if the same filter works without.
                    if let Ok(Some(_)) = self.search(probe, &filter, "").await {
                        self.seen.sorting = Some(false);
                        return;
                    }
                }
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        self.cannot_tell(probe, "no filter listed both probe users");
    }

    // === userName uniqueness ===

    async fn uniqueness(&mut self, alpha: &Person) {
        let probe = Probe::UserNameUniqueness;
        let mut again = self.user(alpha.who);
        let mut statuses = [None, None];
        for (i, name) in [self.user_name(alpha.who), self.user_name(alpha.who).to_uppercase()]
            .into_iter()
            .enumerate()
        {
            again["userName"] = json!(name);
            match self.send(probe, "POST", "/Users", Some(&again)).await {
                Ok(reply) => {
                    statuses[i] = Some(reply.status);
                    // A duplicate taken is the probe's to delete.
                    if let Some(id) = created_id(&reply).filter(|_| reply.ok()) {
                        if let Err(error) = self.app.created("Users", &id, &lowercase_prefix(&name)) {
                            self.cannot_tell(probe, error);
                        }
                    }
                }
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        if statuses.iter().any(Option::is_some) {
            self.seen.uniqueness = Some(Uniqueness {
                same: statuses[0],
                other_case: statuses[1],
            });
        }
    }

    // === PATCH, PUT, booleans ===

    fn patch_body(operation: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": [operation]})
    }

    /// PATCHes a user and reads it back: the PATCH's status and the user after it.
    async fn patch_user(&mut self, probe: Probe, id: &str, operation: Value) -> Result<(u16, Value), String> {
        let path = format!("/Users/{}", encode(id));
        let reply = self
            .send(probe, "PATCH", &path, Some(&Self::patch_body(operation)))
            .await?;
        let after = self.get(probe, "Users", id).await?;
        Ok((reply.status, after.body))
    }

    async fn patches(&mut self, alpha: &Person) {
        let id = alpha.id.clone();
        // Supported at all, and how it answers.
        match self
            .patch_user(
                Probe::PatchSupport,
                &id,
                json!({"op": "replace", "path": "title", "value": "probe-1"}),
            )
            .await
        {
            Ok((status, after)) => {
                let applied = success(status) && after["title"] == "probe-1";
                self.seen.patch = Some(applied);
                if applied {
                    self.seen.patch_status = Some(status);
                    if let Some(e) = self.evidence.get(&Probe::PatchSupport).cloned() {
                        self.evidence.insert(Probe::PatchAnswer, e);
                    }
                }
            }
            Err(error) => self.cannot_tell(Probe::PatchSupport, error),
        }
        if self.seen.patch != Some(true) {
            for probe in [Probe::OpCase, Probe::PathlessPatch, Probe::ValueFilterPath] {
                self.cannot_tell(probe, "PATCH is not applied");
            }
            self.string_boolean_by_put(alpha).await;
            return;
        }
        let probes: [(Probe, Value, Applied); 3] = [
            (
                Probe::OpCase,
                json!({"op": "Replace", "path": "title", "value": "probe-2"}),
                |after| after["title"] == "probe-2",
            ),
            (
                Probe::PathlessPatch,
                json!({"op": "replace", "value": {"title": "probe-3"}}),
                |after| after["title"] == "probe-3",
            ),
            (
                Probe::ValueFilterPath,
                json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": "probe-changed@example.com"}),
                |after| {
                    after["emails"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|e| e["value"] == "probe-changed@example.com")
                },
            ),
        ];
        for (probe, operation, applied) in probes {
            match self.patch_user(probe, &id, operation).await {
                Ok((status, after)) => {
                    let seen = Some(success(status) && applied(&after));
                    match probe {
                        Probe::OpCase => self.seen.op_case_insensitive = seen,
                        Probe::PathlessPatch => self.seen.pathless_patch = seen,
                        _ => self.seen.value_filter_path = seen,
                    }
                }
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        // "active":"False": refused, taken as false, or accepted and ignored.
        let probe = Probe::StringBoolean;
        match self
            .patch_user(probe, &id, json!({"op": "replace", "path": "active", "value": "False"}))
            .await
        {
            Ok((status, after)) => {
                self.seen.string_boolean = Some(string_boolean(status, &after));
                let _ = self
                    .patch_user(probe, &id, json!({"op": "replace", "path": "active", "value": true}))
                    .await;
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    /// `"active":"False"` in a PUT, for an application without PATCH.
    async fn string_boolean_by_put(&mut self, alpha: &Person) {
        let probe = Probe::StringBoolean;
        let mut body = self.user(alpha.who);
        body["active"] = json!("False");
        let path = format!("/Users/{}", encode(&alpha.id));
        match self.send(probe, "PUT", &path, Some(&body)).await {
            Ok(reply) => {
                if let Ok(after) = self.get(probe, "Users", &alpha.id).await {
                    self.seen.string_boolean = Some(string_boolean(reply.status, &after.body));
                }
                let restored = self.user(alpha.who);
                let _ = self.send(probe, "PUT", &path, Some(&restored)).await;
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    async fn put(&mut self, alpha: &Person) {
        let probe = Probe::PutSupport;
        let mut body = self.user(alpha.who);
        body["title"] = json!("probe-put");
        let path = format!("/Users/{}", encode(&alpha.id));
        match self.send(probe, "PUT", &path, Some(&body)).await {
            Ok(reply) => match self.get(probe, "Users", &alpha.id).await {
                Ok(after) => self.seen.put = Some(reply.ok() && after.body["title"] == "probe-put"),
                Err(error) => self.cannot_tell(probe, error),
            },
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    async fn etags(&mut self, alpha: &Person) {
        let probe = Probe::Etags;
        let reply = match self.get(probe, "Users", &alpha.id).await {
            Ok(reply) => reply,
            Err(error) => return self.cannot_tell(probe, error),
        };
        let given = reply.header("etag").is_some() || reply.body.pointer("/meta/version").is_some();
        let mut etags = self.seen.etags.unwrap_or_default();
        etags.given = given;
        if given {
            let path = format!("/Users/{}", encode(&alpha.id));
            let stale = [("if-match", "W/\"scimtrail-probe-stale\"")];
            let attempt = if self.seen.patch == Some(true) {
                let body = Self::patch_body(json!({"op": "replace", "path": "title", "value": "probe-stale"}));
                self.send_with(probe, "PATCH", &path, Some(&body), self.content_type, &stale)
                    .await
            } else {
                let mut body = self.user(alpha.who);
                body["title"] = json!("probe-stale");
                self.send_with(probe, "PUT", &path, Some(&body), self.content_type, &stale)
                    .await
            };
            match attempt {
                Ok(reply) => etags.stale_if_match = Some(reply.status),
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        self.seen.etags = Some(etags);
    }

    // === groups and members ===

    /// PATCHes a group and reads its members back.
    async fn patch_group(&mut self, probe: Probe, id: &str, operation: Value) -> Result<(u16, Vec<String>), String> {
        let path = format!("/Groups/{}", encode(id));
        let reply = self
            .send(probe, "PATCH", &path, Some(&Self::patch_body(operation)))
            .await?;
        let members = self.members(probe, id).await?;
        Ok((reply.status, members))
    }

    async fn members(&mut self, probe: Probe, id: &str) -> Result<Vec<String>, String> {
        let after = self.get(probe, "Groups", id).await?;
        let mut members: Vec<String> = after.body["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["value"].as_str().map(str::to_owned))
            .collect();
        members.sort();
        members.dedup();
        Ok(members)
    }

    /// Adds those of `people` the group lacks (one at a time: no duplicate member), and
    /// reads its members back.
    async fn fill(
        &mut self,
        probe: Probe,
        group: &str,
        people: &[&Person],
        member: &dyn Fn(&str) -> Value,
    ) -> Result<Vec<String>, String> {
        let mut members = self.members(probe, group).await?;
        for person in people {
            if !members.contains(&person.id) {
                let add = json!({"op": "add", "path": "members", "value": [member(&person.id)]});
                members = self.patch_group(probe, group, add).await?.1;
            }
        }
        Ok(members)
    }

    async fn groups(&mut self, alpha: &Person, bravo: &Person) {
        let probes = [
            Probe::MemberType,
            Probe::MemberFilterPath,
            Probe::ValueArrayRemoval,
            Probe::EmptyMembersReplace,
        ];
        if self.seen.patch != Some(true) {
            for probe in probes {
                self.cannot_tell(probe, "PATCH is not applied");
            }
            return;
        }
        let name = format!("{} group", self.run);
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name,
            "members": []
        });
        let created = match self.send(Probe::MemberType, "POST", "/Groups", Some(&body)).await {
            Ok(reply) if reply.ok() => match created_id(&reply) {
                Some(id) => Ok(id),
                None => self
                    .find(Probe::MemberType, "Groups", "displayName", &name)
                    .await
                    .and_then(|id| id.ok_or_else(|| "the group created cannot be found".to_owned())),
            },
            Ok(reply) => Err(format!("a group could not be created ({})", reply.status)),
            Err(error) => Err(error),
        };
        let group = match created.and_then(|id| self.app.created("Groups", &id, &name).map(|()| id)) {
            Ok(id) => id,
            Err(error) => {
                for probe in probes {
                    self.cannot_tell(probe, error.clone());
                }
                return;
            }
        };
        let mut both = vec![alpha.id.clone(), bravo.id.clone()];
        both.sort();

        // A member without "type"; if refused, with it.
        let probe = Probe::MemberType;
        let mut typed = false;
        match self
            .patch_group(
                probe,
                &group,
                json!({"op": "add", "path": "members", "value": [{"value": alpha.id}]}),
            )
            .await
        {
            Ok((status, members)) if success(status) && members.contains(&alpha.id) => {
                self.seen.member_type_required = Some(false);
            }
            Ok(_) => match self
                .patch_group(
                    probe,
                    &group,
                    json!({"op": "add", "path": "members", "value": [{"value": alpha.id, "type": "User"}]}),
                )
                .await
            {
                Ok((status, members)) if success(status) && members.contains(&alpha.id) => {
                    self.seen.member_type_required = Some(true);
                    typed = true;
                }
                Ok(_) => return self.cannot_tell(probe, "no member could be added, with \"type\" or without"),
                Err(error) => return self.cannot_tell(probe, error),
            },
            Err(error) => return self.cannot_tell(probe, error),
        }
        let member = |id: &str| match typed {
            true => json!({"value": id, "type": "User"}),
            false => json!({"value": id}),
        };

        // remove members[value eq "bravo"]: bravo only.
        let probe = Probe::MemberFilterPath;
        match self.fill(probe, &group, &[alpha, bravo], &member).await {
            Ok(members) if members == both => {
                let filter = format!("members[value eq {}]", json!(bravo.id));
                match self
                    .patch_group(probe, &group, json!({"op": "remove", "path": filter}))
                    .await
                {
                    Ok((status, members)) => {
                        self.seen.member_filter_path = Some(success(status) && members == [alpha.id.clone()])
                    }
                    Err(error) => self.cannot_tell(probe, error),
                }
            }
            Ok(_) => self.cannot_tell(probe, "a second member could not be added"),
            Err(error) => self.cannot_tell(probe, error),
        }

        // remove members with a value array.
        let probe = Probe::ValueArrayRemoval;
        match self.fill(probe, &group, &[alpha, bravo], &member).await {
            Ok(members) if members == both => {
                match self
                    .patch_group(
                        probe,
                        &group,
                        json!({"op": "remove", "path": "members", "value": [{"value": bravo.id}]}),
                    )
                    .await
                {
                    Ok((status, _)) if !success(status) => self.seen.value_array_removal = Some(ArrayRemoval::Refused),
                    Ok((_, members)) if members.is_empty() => self.seen.value_array_removal = Some(ArrayRemoval::All),
                    Ok((_, members)) if members == [alpha.id.clone()] => {
                        self.seen.value_array_removal = Some(ArrayRemoval::OnlyNamed)
                    }
                    Ok((_, members)) if members == both => self.seen.value_array_removal = Some(ArrayRemoval::Nothing),
                    Ok(_) => self.cannot_tell(probe, "the members left are neither, one nor both"),
                    Err(error) => self.cannot_tell(probe, error),
                }
            }
            Ok(_) => self.cannot_tell(probe, "the group does not hold both probe users"),
            Err(error) => self.cannot_tell(probe, error),
        }

        // replace members [].
        let probe = Probe::EmptyMembersReplace;
        match self.fill(probe, &group, &[bravo], &member).await {
            Ok(members) if !members.is_empty() => {
                match self
                    .patch_group(probe, &group, json!({"op": "replace", "path": "members", "value": []}))
                    .await
                {
                    Ok((status, members)) => {
                        self.seen.empty_members_replace = Some(success(status) && members.is_empty())
                    }
                    Err(error) => self.cannot_tell(probe, error),
                }
            }
            Ok(_) => self.cannot_tell(probe, "the group has no member to replace"),
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    // === bulk ===

    async fn bulk(&mut self) {
        let probe = Probe::Bulk;
        if self.seen.bulk_advertised.is_some_and(|b| !b.supported) {
            return;
        }
        let user = self.user("charlie");
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "POST", "path": "/Users", "bulkId": "probe", "data": user}]
        });
        match self.send(probe, "POST", "/Bulk", Some(&body)).await {
            Ok(reply) => {
                let operation = &reply.body["Operations"][0];
                let status = match &operation["status"] {
                    Value::String(s) => s.split_whitespace().next().and_then(|s| s.parse::<u16>().ok()),
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Value::Object(o) => o.get("code").and_then(Value::as_str).and_then(|s| s.parse().ok()),
                    _ => None,
                };
                let created = reply.ok() && status.is_some_and(success);
                self.seen.bulk_works = Some(created);
                if created {
                    let id = operation["location"]
                        .as_str()
                        .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
                        .map(str::to_owned);
                    let name = self.user_name("charlie");
                    let id = match id {
                        Some(id) => Some(id),
                        None => self.find(probe, "Users", "userName", &name).await.ok().flatten(),
                    };
                    if let Some(id) = id {
                        let _ = self.app.created("Users", &id, &name);
                    }
                }
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    // === deprovisioning ===

    async fn listed(&mut self, probe: Probe, person: &Person) -> Result<bool, String> {
        let filter = format!("userName eq {}", json!(self.user_name(person.who)));
        Ok(self
            .search(probe, &filter, "")
            .await?
            .is_some_and(|listed| listed.ids.contains(&person.id)))
    }

    async fn deactivation(&mut self, bravo: &Person) {
        let probe = Probe::Deactivation;
        let path = format!("/Users/{}", encode(&bravo.id));
        let sent = if self.seen.patch == Some(true) {
            let body = Self::patch_body(json!({"op": "replace", "path": "active", "value": false}));
            self.send(probe, "PATCH", &path, Some(&body)).await
        } else {
            let mut body = self.user(bravo.who);
            body["active"] = json!(false);
            self.send(probe, "PUT", &path, Some(&body)).await
        };
        if let Err(error) = sent {
            return self.cannot_tell(probe, error);
        }
        let reads_inactive = match self.get(probe, "Users", &bravo.id).await {
            Ok(after) => after.body["active"] == json!(false),
            Err(error) => return self.cannot_tell(probe, error),
        };
        match self.listed(probe, bravo).await {
            Ok(still_listed) => {
                self.seen.after_deactivate = Some(AfterDeactivate {
                    reads_inactive,
                    still_listed,
                })
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    async fn deletion(&mut self, bravo: &Person) {
        let probe = Probe::Deletion;
        let path = format!("/Users/{}", encode(&bravo.id));
        let delete_status = match self.send(probe, "DELETE", &path, None).await {
            Ok(reply) => reply.status,
            Err(error) => return self.cannot_tell(probe, error),
        };
        let get_status = match self.get(probe, "Users", &bravo.id).await {
            Ok(reply) => reply.status,
            Err(error) => return self.cannot_tell(probe, error),
        };
        if get_status == 404 {
            self.app.deleted("Users", &bravo.id);
        }
        match self.listed(probe, bravo).await {
            Ok(still_listed) => {
                self.seen.after_delete = Some(AfterDelete {
                    delete_status,
                    get_status,
                    still_listed,
                })
            }
            Err(error) => self.cannot_tell(probe, error),
        }
    }
}

/// A filter, and whether alpha and bravo are expected in its answer.
type Expected = (String, bool, bool);

/// Whether a PATCH took effect, from the user read back.
type Applied = fn(&Value) -> bool;

/// A filtered list's answer.
struct Listed {
    ids: Vec<String>,
    /// The page holds fewer than `totalResults`.
    cut: bool,
}

impl Listed {
    /// Whether alpha's and bravo's presence is as wanted; `None` when a user wanted is
    /// missing from a page that was cut before it.
    fn verdict(&self, alpha: &str, want_alpha: bool, bravo: &str, want_bravo: bool) -> Option<bool> {
        let has = |id: &str| self.ids.iter().any(|i| i == id);
        let (a, b) = (has(alpha), has(bravo));
        if (a && !want_alpha) || (b && !want_bravo) {
            return Some(false);
        }
        if (want_alpha && !a) || (want_bravo && !b) {
            return if self.cut { None } else { Some(false) };
        }
        Some(true)
    }
}

fn success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn string_boolean(status: u16, after: &Value) -> StringBoolean {
    match (success(status), &after["active"]) {
        (false, _) => StringBoolean::Refused,
        (true, Value::Bool(false)) => StringBoolean::Applied,
        _ => StringBoolean::Ignored,
    }
}

/// The id a create's answer gives: the body's, else the `Location`'s last segment.
fn created_id(reply: &Reply) -> Option<String> {
    reply
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let location = reply.header("location")?;
            let path = location.split(['?', '#']).next()?;
            path.trim_end_matches('/').rsplit('/').next().map(str::to_owned)
        })
        .filter(|id| !id.is_empty())
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// An upper-cased probe name, known by its prefix in lower case (the clean-up checks it).
fn lowercase_prefix(name: &str) -> String {
    match name.get(..PREFIX.len()) {
        Some(start) if start.eq_ignore_ascii_case(PREFIX) => format!("{PREFIX}{}", &name[PREFIX.len()..]),
        _ => name.to_owned(),
    }
}
