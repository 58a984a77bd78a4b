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

mod groups;
mod lifecycle;
mod searches;
mod writes;

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
