//! Respond: the application's answer checked and turned into the IdP's. In order: read back
//! what a write left (`read_back.rs`, when the route asks), the findings — what the answer
//! shows did not take effect —, the request's shape (`shape_drift`), each bulk operation's
//! outcome, the response rules (R1, R2, R3, R8), the outcome, the resource's snapshot and the
//! names it shows, gzip again for an IdP that takes it; and the completion to record.

use super::forward::Forwarded;
use super::normalise::{filter_param, header_text, recorded_changes, Normalised};
use super::Recording;
use crate::clock::{elapsed_ms, now_ms};
use crate::config::Route;
use crate::{content_coding, redact, state, upstream, Proxy};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use scimtrail_analysis::bulk;
use scimtrail_analysis::classify::{self, learn_from_response};
use scimtrail_analysis::findings::{self, Finding};
use scimtrail_rules::{self as rules, normalize_response};
use scimtrail_store::{Completion, NewExchange, ResourceName, Write};
use serde_json::Value;

/// The answer for the IdP, after the response rules.
struct Returned {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    json: Option<Value>,
}

impl Proxy {
    /// The response for the IdP and the exchange's completion.
    pub(super) async fn respond(
        &self,
        recording: &mut Recording<'_>,
        route: &Route,
        normalised: Normalised,
        forwarded: Forwarded,
        idp_headers: &HeaderMap,
    ) -> (Completion, Response<Full<Bytes>>) {
        let Normalised {
            profile,
            classification,
            shape,
            to_forward,
            mut changes,
            stateful,
            enforce,
            ..
        } = normalised;
        let Forwarded {
            sent,
            parts: upstream_parts,
            body: upstream_bytes,
            encoded,
            split_failure,
            changes: forwarding_changes,
        } = forwarded;
        changes.extend(forwarding_changes);
        let answered = answered(&upstream_parts, &upstream_bytes);
        let found = self
            .find(recording, idp_headers, route, &to_forward, &answered, shape)
            .await;
        let new = &recording.new;
        // `/Bulk`: each operation's own outcome, from the application's BulkResponse.
        let bulk_operations = (classification.operation == "bulk")
            .then(|| bulk::operations(to_forward.body.as_ref(), answered.body.as_ref()))
            .flatten();

        // The response, normalised for the IdP.
        let normalized = normalize_response(&to_forward, &answered, &profile, &route.target);
        changes.extend(recorded_changes(&normalized.changes, enforce, &route.redaction, None));
        let returned = returned(&upstream_parts, upstream_bytes, answered, normalized, enforce);
        let outcome = outcome(
            returned.status,
            split_failure.is_some(),
            bulk_operations.as_ref().and_then(bulk::outcome),
            &found,
        );
        if stateful && returned.status.is_success() {
            self.keep_snapshot(route, new, returned.json.as_ref());
        }
        let Returned {
            status,
            mut headers,
            body,
            json,
        } = returned;
        let (response_body, response_json) = redact::body_of(&body, json.as_ref(), &route.redaction);
        let (learned_id, learned_user) = learn_from_response(&classification, response_json.as_deref());
        if status.is_success() {
            self.learn_names(route, new.resource_type.as_deref(), response_json.as_deref());
        }
        let body = encoded_again(body, &mut headers, encoded, idp_headers);
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        let completion = Completion {
            id: new.id.clone(),
            duration_ms: elapsed_ms(recording.started),
            forwarded_headers: Some(sent.headers),
            forwarded_body: sent.body,
            changes: Value::Array(changes),
            upstream_status: Some(upstream_parts.status.as_u16()),
            status: status.as_u16(),
            response_headers: self.redactor.headers(response.headers()),
            response_body,
            outcome: outcome.to_owned(),
            findings: Value::Array(found.iter().map(Finding::to_json).collect()),
            bulk_operations,
            error: split_failure,
            resource_id: learned_id,
            user_name: learned_user,
            paced_ms: None,
        };
        (completion, response)
    }

    /// What the traffic shows did not take effect: the application's answer, what it now
    /// holds when read back, and a request shape never seen before; counted and logged.
    async fn find(
        &self,
        recording: &mut Recording<'_>,
        idp_headers: &HeaderMap,
        route: &Route,
        to_forward: &rules::Request,
        answered: &rules::Response,
        shape: Option<String>,
    ) -> Vec<Finding> {
        let (new, patience) = (&recording.new, &mut *recording.patience);
        let read_back = match read_back_path(route, to_forward, answered) {
            Some(path) => self.read_back(route, new, &path, idp_headers, patience).await,
            None => None,
        };
        let filter = filter_param(to_forward.query.as_deref());
        let mut found = findings::findings(&findings::Observed {
            method: &to_forward.method,
            path: &to_forward.path,
            filter: filter.as_deref(),
            request: to_forward.body.as_ref(),
            lifecycle: new.lifecycle.as_deref(),
            status: answered.status,
            response: answered.body.as_ref(),
            has_body: answered.has_body,
            read_back: read_back.as_ref(),
            redaction: &route.redaction,
        });
        if let Some(shape) = shape {
            found.extend(self.shape_drift(route, shape).await);
        }
        for finding in &found {
            self.metrics.finding(&route.name, &route.idp, finding.kind);
            tracing::warn!(kind = finding.kind, detail = %finding.detail, "Finding.");
        }
        found
    }

    /// What a stateful rule's write left, as the application returned it: the resource's
    /// snapshot, when the answer is the resource the exchange addressed.
    fn keep_snapshot(&self, route: &Route, new: &NewExchange, returned: Option<&Value>) {
        if let (Some(resource), Some(rt), Some(id)) = (returned, &new.resource_type, &new.resource_id) {
            if resource.get("id").and_then(Value::as_str) == Some(id.as_str()) {
                self.recorder.write_behind(state::snapshot(route, rt, id, resource));
            }
        }
    }

    /// `shape_drift`: the request as the IdP sent it has a shape this route never saw.
    async fn shape_drift(&self, route: &Route, shape: String) -> Option<Finding> {
        let new = self
            .shapes
            .observe(&self.store, &self.recorder, route, shape.clone())
            .await;
        new.then(|| Finding {
            kind: "shape_drift",
            detail: format!("a request shape never seen before on route {}: {shape}", route.name),
        })
    }

    /// Keeps what the resources a response shows are called (the store's `resource_names`),
    /// so that a person's records by id are found by their name.
    fn learn_names(&self, route: &Route, resource_type: Option<&str>, response: Option<&Value>) {
        let Some(resource_type) = resource_type.filter(|rt| matches!(*rt, "Users" | "Groups")) else {
            return;
        };
        let learned_at_ms = now_ms();
        let names: Vec<ResourceName> = classify::names_shown(response)
            .into_iter()
            .map(|names| ResourceName {
                route: route.name.clone(),
                resource_type: resource_type.to_owned(),
                resource_id: names.id,
                user_name: names.user_name,
                external_id: names.external_id,
                display_name: names.display_name,
                learned_at_ms,
            })
            .filter(|name| self.names_written.is_new(name))
            .collect();
        if !names.is_empty() {
            self.recorder.write_behind(Write::Names(names));
        }
    }
}

/// The answer for the IdP: the application's, or in enforce mode as the response rules made
/// it (its bytes kept when its body did not change).
fn returned(
    upstream: &http::response::Parts,
    upstream_bytes: Bytes,
    answered: rules::Response,
    normalized: rules::Normalized<rules::Response>,
    enforce: bool,
) -> Returned {
    let mut headers = upstream::end_to_end(&upstream.headers);
    if !enforce || normalized.changes.is_empty() {
        return Returned {
            status: upstream.status,
            headers,
            body: upstream_bytes,
            json: answered.body,
        };
    }
    let made = normalized.value;
    if let Some(value) = made.content_type.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(CONTENT_TYPE, value);
    }
    if let Some(value) = made.retry_after.as_deref().and_then(|r| HeaderValue::from_str(r).ok()) {
        headers.insert(http::header::RETRY_AFTER, value);
    }
    if !made.has_body {
        headers.remove(CONTENT_TYPE);
    }
    let body = match (&made.body, made.body == answered.body) {
        (_, true) => upstream_bytes,
        (Some(body), false) => Bytes::from(body.to_string()),
        (None, false) => Bytes::new(),
    };
    Returned {
        status: StatusCode::from_u16(made.status).unwrap_or(upstream.status),
        headers,
        body,
        json: made.body,
    }
}

/// What the IdP is told decides the outcome: a lookup the application answered 404 and the
/// IdP receives as an empty list (R1) found nothing, it did not fail.
fn outcome(status: StatusCode, split_failed: bool, bulk: Option<&'static str>, found: &[Finding]) -> &'static str {
    if split_failed {
        // Part of a split PATCH was applied, part not.
        "partial"
    } else if status.as_u16() >= 400 {
        "failed"
    } else if let Some(outcome) = bulk {
        outcome
    } else if found.iter().any(Finding::is_partial) {
        // The application said it worked; what it returned says it did not, entirely.
        "partial"
    } else {
        "ok"
    }
}

/// What to read back after this write (relative to the route), if the route reads back and
/// the application accepted a write to a user or group: the resource written, or created.
/// The application's answer as the response rules read it.
fn answered(parts: &http::response::Parts, bytes: &Bytes) -> rules::Response {
    rules::Response {
        status: parts.status.as_u16(),
        content_type: header_text(&parts.headers, CONTENT_TYPE),
        // Nothing to parse in an empty answer (a 204).
        body: (!bytes.is_empty())
            .then(|| serde_json::from_slice(bytes).ok())
            .flatten(),
        has_body: !bytes.is_empty(),
        retry_after: header_text(&parts.headers, http::header::RETRY_AFTER),
        received_at_secs: now_ms() / 1000,
    }
}

/// The body for the IdP: gzip again when the application encoded its answer and the IdP
/// accepts gzip.
fn encoded_again(body: Bytes, headers: &mut HeaderMap, encoded: bool, idp_headers: &HeaderMap) -> Bytes {
    if encoded && !body.is_empty() && content_coding::accepts_gzip(idp_headers) {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
        Bytes::from(content_coding::gzip(&body))
    } else {
        body
    }
}

fn read_back_path(route: &Route, sent: &rules::Request, answered: &rules::Response) -> Option<String> {
    if !route.read_back || !(200..300).contains(&answered.status) {
        return None;
    }
    let path = sent.path.trim_end_matches('/');
    if scimtrail_scim::endpoint::is_create(&sent.method, path) {
        let id = answered.body.as_ref()?.get("id")?.as_str()?;
        return Some(format!("{path}/{}", scimtrail_scim::endpoint::id_segment(id)));
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (sent.method.as_str(), segments.as_slice()) {
        ("PUT" | "PATCH" | "DELETE", [.., "Users" | "Groups", _]) => Some(path.to_owned()),
        _ => None,
    }
}
