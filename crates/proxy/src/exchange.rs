//! The life of one exchange, in order: admit (route, authorise, read the body: `admit.rs`) →
//! classify → normalise → record (in flight) → forward (`upstream.rs`) → read the response →
//! record (complete) → respond.
//!
//! Every path out of this function, the proxy's own refusals included, records the exchange
//! and answers with a SCIM error body where the proxy made the answer. What such an answer
//! tells the caller is stable and says nothing of the proxy's insides (no upstream URL, no
//! error chain, no database error): those go to the record's `error` and the log, and the
//! answer names the exchange that holds them.

use crate::admit::Admitted;
use crate::capacity::{forwarded_client, is_trusted};
use crate::classify::{self, classify, learn_from_response};
use crate::config::Route;
use crate::content_coding;
use crate::recorder::RecordMode;
use crate::upstream::{self, OnBehalf, Outbound, UpstreamError};
use crate::{bulk, findings, redact, refusals, state, Proxy};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use scimtrail_rules::{self as rules, needs_state, normalize_request, normalize_response, Mode};
use scimtrail_scim::redact::Redaction;
use scimtrail_scim::{json as scim_json, ScimError, ScimType};
use scimtrail_store::{Completion, NewExchange, ResourceName, Write};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The response header that carries the exchange id back to the client.
pub const EXCHANGE_ID_HEADER: &str = "scimtrail-exchange-id";
/// The response header that names the proxy's own error, on responses the proxy made.
pub const ERROR_HEADER: &str = "scimtrail-error";

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What was sent to the application, as recorded.
struct Sent {
    headers: Value,
    /// The body as forwarded, when normalisation changed it (redacted).
    body: Option<String>,
}

/// The changes as the exchange records them: redacted, and marked applied (enforce) or not
/// (observe: what the rules would have changed).
fn recorded_changes(
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

/// The `filter` query parameter, decoded.
fn filter_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("filter"))
        .map(|(_, value)| value.into_owned())
}

/// What to read back after this write (relative to the route), if the route reads back and
/// the application accepted a write to a user or group: the resource written, or created.
fn read_back_path(route: &Route, sent: &rules::Request, answered: &rules::Response) -> Option<String> {
    if !route.read_back || !(200..300).contains(&answered.status) {
        return None;
    }
    let path = sent.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (sent.method.as_str(), segments.as_slice()) {
        ("PUT" | "PATCH" | "DELETE", [.., "Users" | "Groups", _]) => Some(path.to_owned()),
        ("POST", [.., "Users" | "Groups"]) => {
            let id = answered.body.as_ref()?.get("id")?.as_str()?;
            Some(format!("{path}/{}", utf8_percent_encode_segment(id)))
        }
        _ => None,
    }
}

/// An id as one path segment: what could end it or start a query is escaped.
fn utf8_percent_encode_segment(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '/' | '?' | '#' | '%' | ' ' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Where a request came from: the address that sent it, over `http` or `https`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) peer: SocketAddr,
    pub(crate) scheme: &'static str,
}

/// On a response: the exchange's refusal is counted into this earlier exchange's record,
/// which the response names instead of its own.
#[derive(Debug, Clone)]
pub(crate) struct CountedInto(pub(crate) String);

/// How an exchange relates to others: the exchange a replay sends again, the exchange one
/// made on behalf of (a bulk request fanned out).
#[derive(Debug, Clone, Default)]
pub(crate) struct Link {
    pub(crate) replay_of: Option<String>,
    pub(crate) parent_id: Option<String>,
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

fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A response the proxy made itself.
pub(crate) struct ProxyAnswer {
    /// What the caller is told: stable, nothing of the proxy's insides.
    pub(crate) error: ScimError,
    pub(crate) kind: &'static str,
    pub(crate) outcome: &'static str,
    /// What the record and the log keep beside it: the upstream URL and error chain, the
    /// store's error, the routes there are.
    pub(crate) internal: Option<String>,
}

impl ProxyAnswer {
    /// A refusal of the IdP's request: recorded `rejected`.
    pub(crate) fn rejected(error: ScimError, kind: &'static str) -> ProxyAnswer {
        ProxyAnswer {
            error,
            kind,
            outcome: "rejected",
            internal: None,
        }
    }

    /// The same answer, with what only the record and the log are told.
    pub(crate) fn with_internal(mut self, internal: String) -> ProxyAnswer {
        self.internal = Some(internal);
        self
    }

    /// The application gave no whole answer.
    fn upstream(error: &UpstreamError, route: &Route) -> ProxyAnswer {
        let (status, detail, kind, outcome) = match error {
            UpstreamError::Unreachable(_) => (
                502,
                "the application could not be reached".to_owned(),
                "unreachable",
                "unreachable",
            ),
            UpstreamError::Timeout(limit) => (
                504,
                format!("the application did not answer within {} s", limit.as_secs_f64()),
                "timeout",
                "unreachable",
            ),
            UpstreamError::BadResponse(_) => (
                502,
                "the application's answer could not be read".to_owned(),
                "bad_response",
                "failed",
            ),
        };
        ProxyAnswer {
            error: ScimError::new(status, None, detail),
            kind,
            outcome,
            internal: Some(format!("the application at {} {error}", route.upstream)),
        }
    }

    /// The SCIM error the caller receives: naming the exchange that records it.
    fn caller_error(&self, id: &str) -> ScimError {
        let mut error = self.error.clone();
        error.detail = format!("{} (scimtrail exchange {id})", error.detail);
        error
    }

    /// The response for the caller.
    pub(crate) fn response(&self, id: &str) -> Response<Full<Bytes>> {
        let mut response = error_response(&self.caller_error(id), self.kind);
        if self.error.status == 405 {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
        }
        response
    }
}

impl Proxy {
    pub(crate) async fn exchange<B>(
        &self,
        id: &str,
        started: Instant,
        request: Request<B>,
        origin: Origin,
        link: Link,
        caller: crate::server::CallerGone,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().map(str::to_owned);
        let mut new = NewExchange {
            id: id.to_owned(),
            received_at_ms: now_ms(),
            instance: self.config.instance.clone(),
            route: None,
            idp: None,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: redact::query(query.as_deref(), self.redaction_for(parts.uri.path())),
            resource_type: None,
            resource_id: None,
            user_name: None,
            operation: "other".to_owned(),
            lifecycle: None,
            request_headers: self.redactor.headers(&parts.headers),
            request_body: None,
            replay_of: link.replay_of,
            parent_id: link.parent_id,
            client: Some(self.client_of(&parts.headers, origin.peer).to_string()),
        };

        let Admitted {
            route,
            parts,
            rest,
            body,
            json: original_json,
            changes: admitted,
            slots: _slots,
        } = match self.admit(&mut new, parts, body, origin.peer, caller).await {
            Ok(admitted) => admitted,
            Err(answer) => return self.refuse(new, started, answer).await,
        };
        let classification = classify(parts.method.as_str(), &rest, query.as_deref(), original_json.as_ref());
        new.resource_type = classification.resource_type.clone();
        new.resource_id = classification.resource_id.clone();
        new.user_name = classification.user_name.clone();
        new.operation = classification.operation.to_owned();
        new.lifecycle = classification.lifecycle.map(str::to_owned);
        if new.operation == "bulk" {
            if let Err(error) = bulk_within_limits(route, &body, original_json.as_ref()) {
                return self
                    .answer(new, started, ProxyAnswer::rejected(error, "bulk_too_large"))
                    .await;
            }
        }

        // Normalise: the rules of the route's IdP profile, for its target application.
        let enforce = route.mode == Mode::Enforce;
        let received = rules_request(&new.method, &rest, query.as_deref(), &parts.headers, original_json);
        let resource = new.resource_type.as_deref().zip(new.resource_id.as_deref());
        let (stateful, normalized) = self.normalise(route, &received, &parts.headers, resource).await;
        let mut changes = admitted;
        let to_forward = match normalized {
            Ok(normalized) => {
                changes.extend(recorded_changes(
                    &normalized.changes,
                    enforce,
                    &route.redaction,
                    received.body.as_ref(),
                ));
                if enforce {
                    normalized.value
                } else {
                    received.clone()
                }
            }
            Err(refusal) if enforce => {
                return self
                    .answer(new, started, ProxyAnswer::rejected(refusal.error, "refused_by_rule"))
                    .await;
            }
            Err(refusal) => {
                let change = json!({
                    "rule": refusal.rule, "side": "request", "op": "refused", "applied": false,
                    "detail": redact::free_text(&refusal.error.detail, &route.redaction),
                });
                changes.push(redact::change(change, &route.redaction, None));
                received.clone()
            }
        };
        let forward_bytes = if to_forward.body == received.body {
            body
        } else {
            to_forward
                .body
                .as_ref()
                .map_or_else(Bytes::new, |value| Bytes::from(value.to_string()))
        };
        let forwarded_body = (to_forward.body != received.body)
            .then(|| redact::body(&forward_bytes, &route.redaction).0)
            .flatten();

        // Whether the in-flight record exists: its completion is then an update, else a whole
        // record. A write is recorded in flight before it is forwarded, so that a crash leaves
        // a record saying it may have reached the application; a read changes nothing, and is
        // recorded once, whole, before its response is released: one wait, not two.
        let mut begun = false;
        if self.durable(&new) && !classify::is_read(&new.method, &new.operation) {
            match self.recorder.write(Write::Begin(Box::new(new.clone()))).await {
                Ok(()) => begun = true,
                Err(error) if self.fail_closed(&new) => {
                    // Nothing is forwarded that could not be recorded.
                    tracing::error!(%error, "The exchange could not be recorded; refusing it.");
                    let answer = ProxyAnswer::rejected(
                        ScimError::new(503, None, "the exchange could not be recorded, so it was not forwarded"),
                        "record_failed",
                    );
                    self.metrics
                        .exchange(&route.name, &route.idp, &new.method, "rejected", started.elapsed());
                    return answer.response(&new.id);
                }
                Err(error) => {
                    tracing::error!(%error, "The exchange could not be recorded; forwarding it anyway (on_store_failure = serve_unrecorded).")
                }
            }
        }

        // An application without `/Bulk`: the bulk request, as received, one operation at a
        // time, each normalised and recorded as an exchange of its own.
        if new.operation == "bulk" && !route.target.bulk && enforce {
            let bulk = received.body.as_ref();
            return self
                .answer_fanned_out(new, begun, started, route, bulk, &parts.headers, origin)
                .await;
        }
        let outbound = Outbound {
            method: &to_forward.method,
            path: &to_forward.path,
            query: to_forward.query.as_deref(),
            body: forward_bytes,
            content_type: to_forward.content_type.as_deref(),
            if_match: to_forward.if_match.as_deref(),
            on_behalf: OnBehalf::Forward {
                parts: &parts,
                peer: origin.peer.ip(),
                scheme: origin.scheme,
            },
        };
        let forwarded = match upstream::build(route, &outbound) {
            Ok(forwarded) => forwarded,
            Err(why) => {
                let answer = ProxyAnswer {
                    error: ScimError::new(502, None, "the request could not be sent to the application"),
                    kind: "bad_upstream_request",
                    outcome: "failed",
                    internal: Some(why),
                };
                return self.answer_begun(new, begun, started, answer).await;
            }
        };
        let as_sent = Sent {
            headers: self.redactor.headers(forwarded.headers()),
            body: forwarded_body,
        };
        let first = match self.upstream.send(route, forwarded).await {
            Ok(answer) => answer,
            Err(error) => {
                let answer = ProxyAnswer::upstream(&error, route);
                return self
                    .answer_forwarded(new, begun, started, answer, as_sent, changes)
                    .await;
            }
        };
        let encoded = first.encoded;
        let (mut upstream_parts, mut upstream_bytes) = (first.parts, first.body);

        // R16: the rest of a PATCH split to the application's limit; R4: the pages after the
        // first. In order, while each succeeds.
        let mut split_failure = None;
        if upstream_parts.status.is_success() && !to_forward.then.is_empty() {
            (upstream_parts, upstream_bytes, split_failure) = self
                .send_parts(
                    &parts,
                    route,
                    &to_forward.then,
                    origin,
                    (upstream_parts, upstream_bytes),
                )
                .await;
        }
        if let (Some(pages), true) = (&to_forward.pages, upstream_parts.status.is_success()) {
            match self
                .fetch_pages(&parts, route, &to_forward, pages, origin, &upstream_bytes)
                .await
            {
                Ok((merged, queries)) => {
                    upstream_bytes = merged;
                    if !queries.is_empty() {
                        changes.push(
                            json!({"rule": "R4", "side": "request", "op": "added", "pointer": "?pages",
                            "before": null, "after": queries, "applied": true}),
                        );
                    }
                }
                Err((failed_parts, failed_bytes, failure)) => {
                    (upstream_parts, upstream_bytes, split_failure) = (failed_parts, failed_bytes, Some(failure));
                }
            }
        }
        // R6: a create answered without the resource: read it back for the IdP.
        let created_rule = route
            .profile
            .rules
            .iter()
            .find(|rule| rule.action == rules::Action::CreatedStatus);
        let is_create = to_forward.method == "POST"
            && (to_forward.path.ends_with("/Users") || to_forward.path.ends_with("/Groups"));
        if let (Some(rule), true, true) = (created_rule, is_create, upstream_parts.status.is_success()) {
            let answered: Option<Value> = serde_json::from_slice(&upstream_bytes).ok();
            if answered.as_ref().and_then(|body| body.get("id")).is_none() {
                let (created, how) = state::fetch_created(
                    &self.upstream,
                    route,
                    &parts.headers,
                    &upstream_parts.headers,
                    &to_forward,
                )
                .await;
                match created {
                    Some(resource) => {
                        let change = rules::Change {
                            rule: rule.id.clone(),
                            side: rules::Side::Response,
                            pointer: String::new(),
                            before: answered,
                            after: Some(resource.clone()),
                        };
                        let mut recorded = recorded_changes(&[change], enforce, &route.redaction, None);
                        for change in &mut recorded {
                            change["detail"] = json!(format!("the created resource was {how}"));
                        }
                        changes.extend(recorded);
                        if enforce {
                            upstream_bytes = Bytes::from(resource.to_string());
                            upstream_parts
                                .headers
                                .insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
                        }
                    }
                    None => changes.push(json!({"rule": rule.id, "side": "response", "op": "not_found",
                        "pointer": "", "applied": false,
                        "detail": format!("the created resource could not be read back: {how}")})),
                }
            }
        }
        let upstream_status = upstream_parts.status;
        // The response, normalised for the IdP.
        let answered = rules::Response {
            status: upstream_status.as_u16(),
            content_type: header_text(&upstream_parts.headers, CONTENT_TYPE),
            body: serde_json::from_slice(&upstream_bytes).ok(),
            has_body: !upstream_bytes.is_empty(),
            retry_after: header_text(&upstream_parts.headers, http::header::RETRY_AFTER),
            received_at_secs: now_ms() / 1000,
        };
        // Read-back: the resource as the application now has it, after a write it accepted.
        let read_back = match read_back_path(route, &to_forward, &answered) {
            Some(path) => self.read_back(route, &new, &path, &parts.headers).await,
            None => None,
        };
        // What the traffic shows did not take effect, from the application's own answer (and
        // what it holds, when read back).
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
        // The shape of the request as the IdP sent it: what changes when the IdP does.
        let received_filter = filter_param(query.as_deref());
        if let Some(shape) = findings::shape(
            &received.method,
            &received.path,
            received_filter.as_deref(),
            received.body.as_ref(),
        ) {
            if self
                .shapes
                .observe(&self.store, &self.recorder, route, shape.clone())
                .await
            {
                found.push(findings::Finding {
                    kind: "shape_drift",
                    detail: format!("a request shape never seen before on route {}: {shape}", route.name),
                });
            }
        }
        for finding in &found {
            self.metrics.finding(&route.name, &route.idp, finding.kind);
            tracing::warn!(kind = finding.kind, detail = %finding.detail, "Finding.");
        }
        // `/Bulk`: each operation's own outcome, from the application's BulkResponse.
        let bulk_operations = (classification.operation == "bulk")
            .then(|| bulk::operations(to_forward.body.as_ref(), answered.body.as_ref()))
            .flatten();
        let bulk_outcome = bulk_operations.as_ref().and_then(bulk::outcome);
        let returned = normalize_response(&to_forward, &answered, &route.profile, &route.target);
        changes.extend(recorded_changes(&returned.changes, enforce, &route.redaction, None));
        let mut headers = upstream::end_to_end(&upstream_parts.headers);
        let (status, returned_bytes, returned_json) = if enforce && !returned.changes.is_empty() {
            let returned = returned.value;
            if let Some(value) = returned
                .content_type
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
            {
                headers.insert(CONTENT_TYPE, value);
            }
            if let Some(value) = returned
                .retry_after
                .as_deref()
                .and_then(|r| HeaderValue::from_str(r).ok())
            {
                headers.insert(http::header::RETRY_AFTER, value);
            }
            if !returned.has_body {
                headers.remove(CONTENT_TYPE);
            }
            let bytes = match (&returned.body, returned.body == answered.body) {
                (_, true) => upstream_bytes,
                (Some(body), false) => Bytes::from(body.to_string()),
                (None, false) => Bytes::new(),
            };
            let status = StatusCode::from_u16(returned.status).unwrap_or(upstream_status);
            (status, bytes, returned.body)
        } else {
            (upstream_status, upstream_bytes, answered.body)
        };
        // What the IdP is told decides the outcome: a lookup the application answered 404 and
        // the IdP receives as an empty list (R1) found nothing, it did not fail.
        let outcome = if split_failure.is_some() {
            // Part of a split PATCH was applied, part not.
            "partial"
        } else if status.as_u16() >= 400 {
            "failed"
        } else if let Some(outcome) = bulk_outcome {
            outcome
        } else if found.iter().any(findings::Finding::is_partial) {
            // The application said it worked; what it returned says it did not, entirely.
            "partial"
        } else {
            "ok"
        };
        if stateful && status.is_success() {
            if let (Some(resource), Some(rt), Some(id)) = (&returned_json, &new.resource_type, &new.resource_id) {
                if resource.get("id").and_then(Value::as_str) == Some(id.as_str()) {
                    self.recorder.write_behind(state::snapshot(route, rt, id, resource));
                }
            }
        }
        let (response_body, response_json) = redact::body_of(&returned_bytes, returned_json, &route.redaction);
        let (learned_id, learned_user) = learn_from_response(&classification, response_json.as_ref());
        if status.is_success() {
            self.learn_names(route, new.resource_type.as_deref(), response_json.as_ref());
        }
        // The application encoded its answer and the IdP accepts gzip: encoded again for it.
        let returned_bytes = if encoded && !returned_bytes.is_empty() && content_coding::accepts_gzip(&parts.headers) {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            headers.append(VARY, HeaderValue::from_static("accept-encoding"));
            Bytes::from(content_coding::gzip(&returned_bytes))
        } else {
            returned_bytes
        };
        let mut response = Response::new(Full::new(returned_bytes));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        let completion = Completion {
            id: new.id.clone(),
            duration_ms: elapsed_ms(started),
            forwarded_headers: Some(as_sent.headers),
            forwarded_body: as_sent.body,
            changes: Value::Array(changes),
            upstream_status: Some(upstream_status.as_u16()),
            status: status.as_u16(),
            response_headers: self.redactor.headers(response.headers()),
            response_body,
            outcome: outcome.to_owned(),
            findings: Value::Array(found.iter().map(findings::Finding::to_json).collect()),
            bulk_operations,
            error: split_failure,
            resource_id: learned_id,
            user_name: learned_user,
        };
        self.complete(new, begun, completion, started, response).await
    }

    /// The route's rules applied to `received`, after reading the resource (`resource`: its
    /// type and id) from the application when a stateful rule needs it; and whether it was read.
    pub(crate) async fn normalise(
        &self,
        route: &Route,
        received: &rules::Request,
        idp_headers: &HeaderMap,
        resource: Option<(&str, &str)>,
    ) -> (bool, Result<rules::Normalized<rules::Request>, rules::Refusal>) {
        let state = if needs_state(received, &route.profile, &route.target) {
            let state = state::fetch(&self.upstream, route, idp_headers, &received.path).await;
            if let (Some(state), Some((resource_type, id))) = (&state, resource) {
                self.recorder
                    .write_behind(state::snapshot(route, resource_type, id, state));
            }
            state
        } else {
            None
        };
        let normalized = normalize_request(received, &route.profile, &route.target, state.as_ref());
        (state.is_some(), normalized)
    }

    /// R16: sends the parts of a split PATCH after the first, in order, stopping at the first
    /// that fails. Returns the response for the IdP — the last one, or the failure, so that
    /// a PATCH only partly applied is never answered as a success — and what failed, if
    /// anything did.
    async fn send_parts(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        rest: &[rules::Request],
        origin: Origin,
        first: (http::response::Parts, Bytes),
    ) -> (http::response::Parts, Bytes, Option<String>) {
        let total = rest.len() + 1;
        let mut last = first;
        for (index, next) in rest.iter().enumerate() {
            let number = index + 2;
            let what = |detail: String| {
                format!("request {number} of {total} of the split PATCH {detail}; the ones before it were applied")
            };
            match self.send_next(parts, route, next, next.query.as_deref(), origin).await {
                Ok((response_parts, bytes)) if response_parts.status.is_success() => last = (response_parts, bytes),
                Ok((response_parts, bytes)) => {
                    let detail = what(format!("was refused with {}", response_parts.status));
                    return (response_parts, bytes, Some(detail));
                }
                Err(detail) => {
                    let detail = what(detail);
                    let (response_parts, bytes) = split_failure_response(&detail);
                    return (response_parts, bytes, Some(detail));
                }
            }
        }
        (last.0, last.1, None)
    }

    /// R4: fetches the pages after the first, one at a time, until the list or the pages
    /// run out, and merges them into the first. Returns the merged list and the queries of the
    /// pages fetched, or the failure for the IdP (status and body) and what failed.
    async fn fetch_pages(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        first_request: &rules::Request,
        pages: &rules::Pages,
        origin: Origin,
        first_bytes: &Bytes,
    ) -> Result<(Bytes, Vec<String>), (http::response::Parts, Bytes, String)> {
        let parse = |bytes: &Bytes| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
        let first = parse(first_bytes);
        let total = first
            .as_object()
            .and_then(|list| scim_json::get(list, "totalResults"))
            .and_then(Value::as_u64);
        let mut last_len = page_len(&first);
        let mut rest = Vec::new();
        let mut queries = Vec::new();
        for n in 1..pages.len() {
            // The list ends before this page: a short page, or the application's total reached.
            let offset = n.saturating_mul(pages.page);
            let past_total = total.is_some_and(|t| pages.start_index.saturating_sub(1).saturating_add(offset) >= t);
            if last_len < pages.page || past_total {
                break;
            }
            let Some(query) = pages.query(n) else { break };
            let what = |detail: String| format!("page {} of the list ({query}) {detail}", n + 1);
            match self.send_next(parts, route, first_request, Some(&query), origin).await {
                Ok((_, bytes)) if !bytes.is_empty() => {
                    let page = parse(&bytes);
                    last_len = page_len(&page);
                    rest.push(page);
                    queries.push(query);
                }
                Ok((response_parts, bytes)) if !response_parts.status.is_success() => {
                    let detail = what(format!("was refused with {}", response_parts.status));
                    return Err((response_parts, bytes, detail));
                }
                Ok(_) => break,
                Err(detail) => {
                    let detail = what(detail);
                    let (response_parts, bytes) = split_failure_response(&detail);
                    return Err((response_parts, bytes, detail));
                }
            }
        }
        Ok((Bytes::from(rules::merge_pages(&first, &rest).to_string()), queries))
    }

    /// Sends one more request an IdP request became (a PATCH part, a page), as forwarded:
    /// its status and body, or why there is none.
    async fn send_next(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        next: &rules::Request,
        query: Option<&str>,
        origin: Origin,
    ) -> Result<(http::response::Parts, Bytes), String> {
        let body = next
            .body
            .as_ref()
            .map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let outbound = Outbound {
            method: &next.method,
            path: &next.path,
            query,
            body,
            content_type: next.content_type.as_deref(),
            if_match: next.if_match.as_deref(),
            on_behalf: OnBehalf::Forward {
                parts,
                peer: origin.peer.ip(),
                scheme: origin.scheme,
            },
        };
        let request = upstream::build(route, &outbound).map_err(|why| format!("could not be built: {why}"))?;
        match self.upstream.send(route, request).await {
            Ok(answer) => Ok((answer.parts, answer.body)),
            Err(error) => {
                tracing::warn!(%error, upstream = %route.upstream, "A further request to the application failed.");
                Err(match error {
                    UpstreamError::Timeout(_) => "timed out".to_owned(),
                    UpstreamError::Unreachable(_) => "could not reach the application".to_owned(),
                    UpstreamError::BadResponse(_) => "was answered with what could not be read".to_owned(),
                })
            }
        }
    }

    /// Records the end of an exchange and releases the response (durable: only once recorded,
    /// unless `fail_closed` is off).
    pub(crate) async fn complete(
        &self,
        new: NewExchange,
        begun: bool,
        completion: Completion,
        started: Instant,
        response: Response<Full<Bytes>>,
    ) -> Response<Full<Bytes>> {
        let route = new.route.clone().unwrap_or_else(|| "-".to_owned());
        let idp = new.idp.clone().unwrap_or_else(|| "-".to_owned());
        let method = new.method.clone();
        let lifecycle = new.lifecycle.clone();
        let new_operation = new.operation.clone();
        let outcome = completion.outcome.clone();
        let (durable, fail_closed) = (self.durable(&new), self.fail_closed(&new));
        let id = new.id.clone();
        self.alerts
            .consider(self.route_named(new.route.as_deref()), &new, &completion);
        let write = if begun {
            Write::Finish(Box::new(completion))
        } else {
            Write::Whole(Box::new(new), Box::new(completion))
        };
        match durable_mode(durable) {
            RecordMode::Durable => {
                if let Err(error) = self.recorder.write(write).await {
                    if fail_closed {
                        tracing::error!(%error, "The response could not be recorded; withholding it.");
                        self.metrics
                            .exchange(&route, &idp, &method, "failed", started.elapsed());
                        let detail = if classify::is_read(&method, &new_operation) {
                            "the application answered but its response could not be recorded, so it is withheld"
                        } else {
                            "the application answered but its response could not be recorded; the request may have been applied"
                        };
                        return ProxyAnswer::rejected(ScimError::new(503, None, detail), "record_failed").response(&id);
                    }
                    tracing::error!(%error, "The response could not be recorded; releasing it anyway (on_store_failure = serve_unrecorded).");
                }
            }
            RecordMode::Async => self.recorder.write_behind(write),
        }
        self.metrics
            .exchange(&route, &idp, &method, &outcome, started.elapsed());
        if let Some(lifecycle) = &lifecycle {
            self.metrics.lifecycle(&route, &idp, lifecycle, &outcome);
        }
        response
    }

    /// A refusal at admission, from anyone who reaches the listener: recorded bounded, and
    /// identical ones within a second counted into one record (`refusals.rs`). A replay's or
    /// a fanned-out operation's is recorded whole, as the evidence of what was replayed.
    async fn refuse(&self, mut new: NewExchange, started: Instant, answer: ProxyAnswer) -> Response<Full<Bytes>> {
        if new.replay_of.is_some() || new.parent_id.is_some() {
            return self.answer(new, started, answer).await;
        }
        refusals::bound(&mut new);
        let key = refusals::Key {
            client: new.client.clone().unwrap_or_default(),
            route: new.route.clone(),
            status: answer.error.status,
        };
        match self.repeats.see(&key, &new.id) {
            refusals::Seen::Repeat(first) => {
                let route = new.route.as_deref().unwrap_or("-");
                let idp = new.idp.as_deref().unwrap_or("-");
                self.metrics
                    .exchange(route, idp, &new.method, answer.outcome, started.elapsed());
                let mut response = answer.response(&first);
                response.extensions_mut().insert(CountedInto(first));
                return response;
            }
            refusals::Seen::First => {
                let recorder = self.recorder.clone();
                refusals::close_later(Arc::clone(&self.repeats), key, move |id, count| {
                    recorder.write_behind(Write::Repeats(id, count));
                });
            }
            refusals::Seen::Uncounted => {}
        }
        self.answer(new, started, answer).await
    }

    /// The client an exchange comes from: the peer, or behind a trusted proxy the client
    /// `X-Forwarded-For` names.
    fn client_of(&self, headers: &HeaderMap, peer: SocketAddr) -> std::net::IpAddr {
        let trusted = &self.config.trusted_proxies;
        match is_trusted(peer.ip(), trusted) {
            true => forwarded_client(headers, trusted).unwrap_or(peer.ip()),
            false => peer.ip(),
        }
    }

    /// A refusal before anything was recorded or forwarded: recorded whole.
    async fn answer(&self, new: NewExchange, started: Instant, answer: ProxyAnswer) -> Response<Full<Bytes>> {
        let response = answer.response(&new.id);
        if let Some(internal) = &answer.internal {
            tracing::info!(kind = answer.kind, %internal, "Refused.");
        }
        let completion = self.answer_completion(&new, started, &answer, None, &response);
        let route = new.route.clone().unwrap_or_else(|| "-".to_owned());
        let idp = new.idp.clone().unwrap_or_else(|| "-".to_owned());
        let method = new.method.clone();
        let lifecycle = new.lifecycle.clone();
        self.alerts
            .consider(self.route_named(new.route.as_deref()), &new, &completion);
        let durable = self.durable(&new);
        let write = Write::Whole(Box::new(new), Box::new(completion));
        match durable_mode(durable) {
            RecordMode::Durable => {
                if let Err(error) = self.recorder.write(write).await {
                    tracing::error!(%error, "A refused exchange could not be recorded.");
                }
            }
            RecordMode::Async => self.recorder.write_behind(write),
        }
        self.metrics
            .exchange(&route, &idp, &method, answer.outcome, started.elapsed());
        if let Some(lifecycle) = &lifecycle {
            self.metrics.lifecycle(&route, &idp, lifecycle, answer.outcome);
        }
        response
    }

    /// A failure after the exchange was begun but before anything was sent.
    pub(crate) async fn answer_begun(
        &self,
        new: NewExchange,
        begun: bool,
        started: Instant,
        answer: ProxyAnswer,
    ) -> Response<Full<Bytes>> {
        let response = answer.response(&new.id);
        let completion = self.answer_completion(&new, started, &answer, None, &response);
        self.complete(new, begun, completion, started, response).await
    }

    /// A failure after the request was sent (or attempted): unreachable, timed out, unreadable.
    async fn answer_forwarded(
        &self,
        new: NewExchange,
        begun: bool,
        started: Instant,
        answer: ProxyAnswer,
        sent: Sent,
        changes: Vec<Value>,
    ) -> Response<Full<Bytes>> {
        if let Some(internal) = &answer.internal {
            tracing::warn!(kind = answer.kind, %internal, "The application gave no whole answer.");
        }
        let response = answer.response(&new.id);
        let mut completion = self.answer_completion(&new, started, &answer, Some(sent.headers), &response);
        completion.forwarded_body = sent.body;
        completion.changes = Value::Array(changes);
        self.complete(new, begun, completion, started, response).await
    }

    fn answer_completion(
        &self,
        new: &NewExchange,
        started: Instant,
        answer: &ProxyAnswer,
        forwarded_headers: Option<Value>,
        response: &Response<Full<Bytes>>,
    ) -> Completion {
        // A refusal may quote what the IdP sent (a filter): recorded without what is never stored.
        let redaction = self.redaction_for(&new.path);
        let mut caller_error = answer.caller_error(&new.id).to_json();
        if let Some(detail) = caller_error.get_mut("detail") {
            if let Some(text) = detail.as_str().map(|t| redact::free_text(t, redaction)) {
                *detail = Value::String(text);
            }
        }
        let error = format!(
            "{}: {}",
            answer.kind,
            answer.internal.as_deref().unwrap_or(&answer.error.detail)
        );
        Completion {
            id: new.id.clone(),
            duration_ms: elapsed_ms(started),
            forwarded_headers,
            forwarded_body: None,
            changes: json!([]),
            upstream_status: None,
            status: answer.error.status,
            response_headers: self.redactor.headers(response.headers()),
            response_body: Some(caller_error.to_string()),
            outcome: answer.outcome.to_owned(),
            findings: json!([]),
            bulk_operations: None,
            error: Some(redact::free_text(&error, redaction)),
            resource_id: None,
            user_name: None,
        }
    }

    /// Whether this exchange is recorded durably: in durable mode, and always for a replay
    /// (the next replay run decides from its record: one lost would be sent twice).
    fn durable(&self, new: &NewExchange) -> bool {
        self.recorder.mode() == RecordMode::Durable || new.replay_of.is_some()
    }

    /// Whether an exchange that cannot be recorded is refused: as configured, and always for
    /// a replay.
    fn fail_closed(&self, new: &NewExchange) -> bool {
        self.config.fail_closed || new.replay_of.is_some()
    }

    /// The route of this name.
    pub(crate) fn route_named(&self, name: Option<&str>) -> Option<&Route> {
        let name = name?;
        self.config.routes.iter().find(|r| r.name == name)
    }

    /// The route with the longest prefix that matches the path on a segment boundary.
    pub(crate) fn route_for(&self, path: &str) -> Option<&Route> {
        self.config
            .routes
            .iter()
            .filter(|r| {
                let prefix = r.path_prefix.trim_end_matches('/');
                prefix.is_empty()
                    || path == prefix
                    || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|r| r.path_prefix.trim_end_matches('/').len())
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

    /// What is never stored of a request to `path`: its route's redaction, or — served by
    /// none — everything any route redacts.
    pub(crate) fn redaction_for(&self, path: &str) -> &Redaction {
        self.route_for(path)
            .map_or(&self.unrouted_redaction, |route| &route.redaction)
    }

    pub(crate) fn route_prefixes(&self) -> String {
        self.config
            .routes
            .iter()
            .map(|r| {
                if r.path_prefix.is_empty() {
                    "/".to_owned()
                } else {
                    r.path_prefix.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A SCIM error response made by the proxy, marked with `scimtrail-error`.
pub(crate) fn error_response(error: &ScimError, kind: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(error.to_json().to_string())));
    *response.status_mut() = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    response
        .headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(kind));
    response
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn durable_mode(durable: bool) -> RecordMode {
    if durable {
        RecordMode::Durable
    } else {
        RecordMode::Async
    }
}

pub(crate) fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// The response to the IdP when a further request (a PATCH part, a page) got no answer.
fn split_failure_response(detail: &str) -> (http::response::Parts, Bytes) {
    let error = ScimError::new(502, None, detail);
    let (parts, _) = error_response(&error, "split_request_failed").into_parts();
    (parts, Bytes::from(error.to_json().to_string()))
}

/// How many resources a ListResponse holds.
fn page_len(list: &Value) -> u64 {
    list.as_object()
        .and_then(|list| scim_json::get(list, "Resources"))
        .and_then(Value::as_array)
        .map_or(0, |resources| resources.len() as u64)
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
