//! Normalise: the request classified (resource, operation, lifecycle: `classify.rs`), held
//! to the bulk limits, and turned by the route's IdP profile and target into what the
//! application accepts (`crates/rules`). When a stateful rule needs the resource, it is read
//! from the application first (`state.rs`). In `enforce` mode the result is forwarded — the
//! original bytes when nothing changed —; in `observe` mode the original is, and the changes
//! are recorded as not applied. A rule's refusal is the IdP's error, never forwarded.

use super::ExchangeError;
use crate::config::Route;
use crate::pacing::{Patience, Refused};
use crate::{redact, state, Proxy};
use bytes::Bytes;
use http::header::{HeaderName, CONTENT_TYPE};
use http::HeaderMap;
use scimtrail_analysis::classify::{classify, Classification};
use scimtrail_analysis::findings;
use scimtrail_rules::{self as rules, needs_state, normalize_request, Mode, Profile};
use scimtrail_scim::redact::Redaction;
use scimtrail_scim::{json as scim_json, ScimError, ScimType};
use scimtrail_store::NewExchange;
use serde_json::{json, Value};
use std::sync::Arc;

/// A request as admission read it.
pub(super) struct Received<'a> {
    pub(super) route: &'a Route,
    /// The route's profile as admission took it.
    pub(super) profile: Arc<Profile>,
    pub(super) parts: &'a http::request::Parts,
    /// The path relative to the route.
    pub(super) rest: &'a str,
    pub(super) body: Bytes,
    pub(super) json: Option<Value>,
    /// What admission changed.
    pub(super) changes: Vec<Value>,
}

/// A request as the application is to receive it.
pub(super) struct Normalised {
    /// The IdP profile of the whole exchange (taken at admission): the response rules, R6's
    /// read-back and a fan-out's operations use it too.
    pub(super) profile: Arc<Profile>,
    pub(super) classification: Classification,
    /// The shape of the request as the IdP sent it (`findings::shape`): what changes when the
    /// IdP does.
    pub(super) shape: Option<String>,
    /// The bulk request as the IdP sent it, kept only when it is fanned out (`fan_out.rs`).
    /// Otherwise the received tree is gone once normalised: an exchange waiting on the
    /// application holds one parsed copy of its request, not two.
    pub(super) received_bulk: Option<Value>,
    /// As it is forwarded (the received one, in observe mode).
    pub(super) to_forward: rules::Request,
    /// The bytes forwarded: the IdP's own when nothing changed.
    pub(super) forward_bytes: Bytes,
    /// The body as forwarded, redacted, when normalisation changed it (taken by `forward.rs`).
    pub(super) forwarded_body: Option<String>,
    /// Every change so far, as recorded.
    pub(super) changes: Vec<Value>,
    /// Whether the rules read the resource from the application first.
    pub(super) stateful: bool,
    /// Whether the rules' changes are applied (`enforce`) or only recorded (`observe`).
    pub(super) enforce: bool,
}

impl Normalised {
    /// Whether this is a bulk request carried out one operation at a time (`fan_out.rs`):
    /// the route's application has no `/Bulk`, and the rules are enforced.
    pub(super) fn fans_out(&self) -> bool {
        self.received_bulk.is_some()
    }
}

impl Proxy {
    /// Classifies `received` into `new` and applies the route's rules; a read they need
    /// waits in the route's pacing queue with `patience`.
    pub(super) async fn normalise(
        &self,
        new: &mut NewExchange,
        received: Received<'_>,
        patience: &mut Patience,
    ) -> Result<Normalised, ExchangeError> {
        let Received {
            route,
            profile,
            parts,
            rest,
            body,
            json: original_json,
            mut changes,
        } = received;
        let query = parts.uri.query();
        let classification = classify(parts.method.as_str(), rest, query, original_json.as_ref());
        new.resource_type.clone_from(&classification.resource_type);
        new.resource_id.clone_from(&classification.resource_id);
        new.user_name.clone_from(&classification.user_name);
        classification.operation.clone_into(&mut new.operation);
        new.lifecycle = classification.lifecycle.map(str::to_owned);
        if classification.operation == "bulk" {
            bulk_within_limits(route, &body, original_json.as_ref())
                .map_err(|error| ExchangeError::idp(error, "bulk_too_large"))?;
        }

        let enforce = route.mode == Mode::Enforce;
        let mut received = rules_request(&new.method, rest, query, &parts.headers, original_json);
        let resource = new.resource_type.as_deref().zip(new.resource_id.as_deref());
        let (stateful, normalized) = self
            .apply_rules(route, &profile, &received, &parts.headers, resource, patience)
            .await
            .map_err(|refused| ExchangeError::paced(&refused))?;
        // What the rules made, when it is what is forwarded (enforce mode).
        let made = match normalized {
            Ok(normalized) => {
                changes.extend(recorded_changes(
                    &normalized.changes,
                    enforce,
                    &route.redaction,
                    received.body.as_ref(),
                ));
                enforce.then_some(normalized.value)
            }
            Err(refusal) if enforce => return Err(ExchangeError::idp(refusal.error, "refused_by_rule")),
            Err(refusal) => {
                let change = json!({
                    "rule": refusal.rule, "side": "request", "op": "refused", "applied": false,
                    "detail": redact::free_text(&refusal.error.detail, &route.redaction),
                });
                changes.push(redact::change(change, &route.redaction, None));
                None
            }
        };
        let filter = filter_param(received.query.as_deref());
        let shape = findings::shape(
            &received.method,
            &received.path,
            filter.as_deref(),
            received.body.as_ref(),
        );
        let changed = made.as_ref().is_some_and(|made| made.body != received.body);
        // The received tree is kept only to be fanned out; otherwise one parsed copy of the
        // request goes on, the one forwarded.
        let fans_out = classification.operation == "bulk" && !route.target.bulk && enforce;
        let received_bulk = if fans_out { received.body.take() } else { None };
        let to_forward = made.unwrap_or(received);
        let forward_bytes = match (&to_forward.body, changed) {
            (_, false) => body,
            (Some(value), true) => Bytes::from(value.to_string()),
            (None, true) => Bytes::new(),
        };
        let forwarded_body = changed
            .then(|| redact::body_of(&forward_bytes, to_forward.body.as_ref(), &route.redaction).0)
            .flatten();
        Ok(Normalised {
            profile,
            classification,
            shape,
            received_bulk,
            to_forward,
            forward_bytes,
            forwarded_body,
            changes,
            stateful,
            enforce,
        })
    }

    /// The rules of `profile` (the route's) applied to `received`, after reading the resource
    /// (`resource`: its type and id) from the application when a stateful rule needs it; and
    /// whether it was read. `Err` when the route's pacing did not send that read.
    pub(crate) async fn apply_rules(
        &self,
        route: &Route,
        profile: &Profile,
        received: &rules::Request,
        idp_headers: &HeaderMap,
        resource: Option<(&str, &str)>,
        patience: &mut Patience,
    ) -> Result<(bool, Result<rules::Normalized<rules::Request>, rules::Refusal>), Refused> {
        let state = if needs_state(received, profile, &route.target) {
            let state = state::fetch(&self.upstream, route, idp_headers, &received.path, patience).await?;
            if let (Some(state), Some((resource_type, id))) = (&state, resource) {
                self.recorder
                    .write_behind(state::snapshot(route, resource_type, id, state));
            }
            state
        } else {
            None
        };
        let normalized = normalize_request(received, profile, &route.target, state.as_ref());
        Ok((state.is_some(), normalized))
    }
}

/// A request as the rules see it (`path` relative to the route).
pub(crate) fn rules_request(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Option<Value>,
) -> rules::Request {
    rules::Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        content_type: header_text(headers, CONTENT_TYPE),
        body,
        if_match: header_text(headers, http::header::IF_MATCH),
        post_filter: None,
        then: Vec::new(),
        pages: None,
    }
}

/// The `filter` query parameter, decoded.
pub(super) fn filter_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("filter"))
        .map(|(_, value)| value.into_owned())
}

/// A header's value, when it is text.
pub(super) fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The changes as the exchange records them: redacted, and marked applied (enforce) or not
/// (observe: what the rules would have changed).
pub(super) fn recorded_changes(
    changes: &[rules::Change],
    applied: bool,
    redaction: &Redaction,
    body: Option<&Value>,
) -> Vec<Value> {
    changes
        .iter()
        .map(|change| {
            let mut recorded = change.to_json();
            if let Some(object) = recorded.as_object_mut() {
                object.insert("applied".to_owned(), Value::Bool(applied));
            }
            redact::change(recorded, redaction, body)
        })
        .collect()
}

/// A bulk request within the route's `maxPayloadSize` and `maxOperations` (RFC 7644 §3.7:
/// 413, naming the limit).
fn bulk_within_limits(route: &Route, body: &Bytes, json: Option<&Value>) -> Result<(), ScimError> {
    let max_bytes = route.target.bulk_payload_limit();
    if body.len() > max_bytes {
        let detail = format!(
            "the bulk request is {} bytes, more than its maxPayloadSize ({max_bytes})",
            body.len()
        );
        return Err(ScimError::new(413, Some(ScimType::TooLarge), detail));
    }
    let operations = json
        .and_then(Value::as_object)
        .and_then(|bulk| scim_json::get(bulk, "Operations"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let max_operations = route.target.max_bulk_operations;
    if operations > max_operations {
        let detail =
            format!("the bulk request has {operations} operations, more than its maxOperations ({max_operations})");
        return Err(ScimError::new(413, Some(ScimType::TooLarge), detail));
    }
    Ok(())
}
