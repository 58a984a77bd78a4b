//! The life of one exchange, in order: route → authorise → read the body → classify →
//! record (in flight) → forward → read the response → record (complete) → respond.
//!
//! Every path out of this function, the proxy's own refusals included, records the exchange
//! and answers with a SCIM error body where the proxy made the answer.

use crate::classify::{classify, learn_from_response};
use crate::config::{Route, Secret, UpstreamAuth};
use crate::recorder::RecordMode;
use crate::{bulk, findings, redact, state, Proxy};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use scimtrail_rules::{self as rules, needs_state, normalize_request, normalize_response, Mode};
use scimtrail_scim::{ScimError, ScimType};
use scimtrail_store::{Completion, NewExchange, Write};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The response header that carries the exchange id back to the client.
pub const EXCHANGE_ID_HEADER: &str = "scimtrail-exchange-id";
/// The response header that names the proxy's own error, on responses the proxy made.
pub const ERROR_HEADER: &str = "scimtrail-error";

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What was sent to the application, as recorded.
struct Sent {
    headers: Value,
    /// The body as forwarded, when normalisation changed it (redacted).
    body: Option<String>,
}

/// The changes as the exchange records them: redacted, and marked applied (enforce) or not
/// (observe: what the rules would have changed).
fn recorded_changes(changes: &[rules::Change], applied: bool) -> Vec<Value> {
    changes
        .iter()
        .map(|change| {
            let mut recorded = change.to_json();
            if let Some(object) = recorded.as_object_mut() {
                object.insert("applied".to_owned(), Value::Bool(applied));
            }
            redact::change(recorded)
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
        merge_pages: false,
    }
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Sets the content type the rules chose (a body with none keeps none).
fn with_content_type(
    mut request: Request<Full<Bytes>>,
    content_type: Option<&str>,
) -> Result<Request<Full<Bytes>>, String> {
    if let Some(content_type) = content_type {
        let value =
            HeaderValue::from_str(content_type).map_err(|_| format!("invalid content type {content_type:?}"))?;
        request.headers_mut().insert(CONTENT_TYPE, value);
    }
    Ok(request)
}

/// A response the proxy made itself.
pub(crate) struct ProxyAnswer {
    pub(crate) error: ScimError,
    pub(crate) kind: &'static str,
    pub(crate) outcome: &'static str,
}

impl Proxy {
    pub(crate) async fn exchange<B>(
        &self,
        id: &str,
        started: Instant,
        request: Request<B>,
        peer: SocketAddr,
        scheme: &'static str,
        link: Link,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let mut new = NewExchange {
            id: id.to_owned(),
            received_at_ms: now_ms(),
            instance: self.config.instance.clone(),
            route: None,
            idp: None,
            method: parts.method.as_str().to_owned(),
            path: path.clone(),
            query: redact::query(query.as_deref()),
            resource_type: None,
            resource_id: None,
            user_name: None,
            operation: "other".to_owned(),
            lifecycle: None,
            request_headers: self.redactor.headers(&parts.headers),
            request_body: None,
            replay_of: link.replay_of,
            parent_id: link.parent_id,
        };

        let Some(route) = self.route_for(&path) else {
            let detail = format!("no route serves \"{path}\"; routes: {}", self.route_prefixes());
            return self
                .answer(
                    new,
                    started,
                    ProxyAnswer {
                        error: ScimError::not_found(detail),
                        kind: "no_route",
                        outcome: "rejected",
                    },
                )
                .await;
        };
        new.route = Some(route.name.clone());
        new.idp = Some(route.idp.clone());
        // A replay is the operator's, authorised by the admin token or the store's owner; a
        // fanned-out bulk operation was authorised with its bulk request.
        let linked = new.replay_of.is_some() || new.parent_id.is_some();
        if let (Some(token), false) = (&route.idp_token, linked) {
            if !bearer_matches(&parts.headers, token) {
                let error = ScimError::new(
                    401,
                    None,
                    "the request's bearer token is missing or not the one configured for this route",
                );
                return self
                    .answer(
                        new,
                        started,
                        ProxyAnswer {
                            error,
                            kind: "unauthorized",
                            outcome: "rejected",
                        },
                    )
                    .await;
            }
        }
        let read = tokio::time::timeout(route.timeout, Limited::new(body, self.config.max_body_bytes).collect()).await;
        let read = read.unwrap_or_else(|_| {
            Err(format!(
                "the client did not send the body within {} s",
                route.timeout.as_secs_f64()
            )
            .into())
        });
        let body = match read {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let error: BoxError = error;
                let answer = if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    let detail = format!("the request body is larger than {} bytes", self.config.max_body_bytes);
                    ProxyAnswer {
                        error: ScimError::new(413, Some(ScimType::TooLarge), detail),
                        kind: "too_large",
                        outcome: "rejected",
                    }
                } else {
                    let detail = format!("the request body could not be read: {error}");
                    ProxyAnswer {
                        error: ScimError::bad_request(ScimType::InvalidSyntax, detail),
                        kind: "bad_body",
                        outcome: "rejected",
                    }
                };
                return self.answer(new, started, answer).await;
            }
        };
        let original_json: Option<Value> = serde_json::from_slice(&body).ok();
        let (stored_body, request_json) = redact::body_of(&body, original_json.clone());
        new.request_body = stored_body;
        let rest = relative_path(&path, &route.path_prefix);
        if has_dot_segment(&rest) {
            let detail = format!("\"{path}\" has a '.' or '..' segment, which could leave the application's base path");
            let answer = ProxyAnswer {
                error: ScimError::bad_request(ScimType::InvalidPath, detail),
                kind: "bad_path",
                outcome: "rejected",
            };
            return self.answer(new, started, answer).await;
        }
        let classification = classify(parts.method.as_str(), &rest, query.as_deref(), request_json.as_ref());
        new.resource_type = classification.resource_type.clone();
        new.resource_id = classification.resource_id.clone();
        new.user_name = classification.user_name.clone();
        new.operation = classification.operation.to_owned();
        new.lifecycle = classification.lifecycle.map(str::to_owned);

        // Normalise: the rules of the route's IdP profile, for its target application.
        let enforce = route.mode == Mode::Enforce;
        let received = rules_request(&new.method, &rest, query.as_deref(), &parts.headers, original_json);
        let resource = new.resource_type.as_deref().zip(new.resource_id.as_deref());
        let (stateful, normalized) = self.normalise(route, &received, &parts.headers, resource).await;
        let (to_forward, mut changes) = match normalized {
            Ok(normalized) => {
                let changes = recorded_changes(&normalized.changes, enforce);
                (if enforce { normalized.value } else { received.clone() }, changes)
            }
            Err(refusal) if enforce => {
                let answer = ProxyAnswer {
                    error: refusal.error,
                    kind: "refused_by_rule",
                    outcome: "rejected",
                };
                return self.answer(new, started, answer).await;
            }
            Err(refusal) => {
                let change = json!({
                    "rule": refusal.rule, "side": "request", "op": "refused", "applied": false,
                    "detail": refusal.error.detail,
                });
                (received.clone(), vec![redact::change(change)])
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
            .then(|| redact::body(&forward_bytes).0)
            .flatten();

        // Whether the in-flight record exists: its completion is then an update, else a whole record.
        let mut begun = false;
        if self.durable(&new) {
            match self.recorder.write(Write::Begin(Box::new(new.clone()))).await {
                Ok(()) => begun = true,
                Err(error) if self.fail_closed(&new) => {
                    // Nothing is forwarded that could not be recorded.
                    tracing::error!(%error, "The exchange could not be recorded; refusing it.");
                    let detail = format!("the exchange could not be recorded, so it was not forwarded: {error}");
                    let response = error_response(&ScimError::new(503, None, detail), "record_failed");
                    self.metrics
                        .exchange(&route.name, &route.idp, &new.method, "rejected", started.elapsed());
                    return response;
                }
                Err(error) => {
                    tracing::error!(%error, "The exchange could not be recorded; forwarding it anyway (fail_closed = false).")
                }
            }
        }

        // An application without `/Bulk`: the bulk request, as received, one operation at a
        // time, each normalised and recorded as an exchange of its own.
        if new.operation == "bulk" && !route.target.bulk && enforce {
            let bulk = received.body.as_ref();
            return self
                .answer_fanned_out(new, begun, started, route, bulk, &parts.headers, peer, scheme)
                .await;
        }
        let built = build_forward(&parts, forward_bytes, route, &to_forward, peer, scheme);
        let forwarded = match built.and_then(|request| with_content_type(request, to_forward.content_type.as_deref())) {
            Ok(forwarded) => forwarded,
            Err(detail) => {
                let answer = ProxyAnswer {
                    error: ScimError::new(502, None, detail),
                    kind: "bad_upstream_request",
                    outcome: "failed",
                };
                return self.answer_begun(new, begun, started, answer).await;
            }
        };
        let as_sent = Sent {
            headers: self.redactor.headers(forwarded.headers()),
            body: forwarded_body,
        };
        let upstream_started = Instant::now();
        let sent = tokio::time::timeout(route.timeout, self.client.request(forwarded)).await;
        self.metrics.upstream(&route.name, upstream_started.elapsed());
        let upstream = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let detail = format!(
                    "the application at {} could not be reached: {}",
                    route.upstream,
                    error_chain(&error)
                );
                let answer = ProxyAnswer {
                    error: ScimError::new(502, None, detail),
                    kind: "unreachable",
                    outcome: "unreachable",
                };
                return self
                    .answer_forwarded(new, begun, started, answer, as_sent, changes)
                    .await;
            }
            Err(_) => {
                let detail = format!(
                    "the application at {} did not answer within {} s",
                    route.upstream,
                    route.timeout.as_secs_f64()
                );
                let answer = ProxyAnswer {
                    error: ScimError::new(504, None, detail),
                    kind: "timeout",
                    outcome: "unreachable",
                };
                return self
                    .answer_forwarded(new, begun, started, answer, as_sent, changes)
                    .await;
            }
        };
        let (upstream_parts, upstream_body) = upstream.into_parts();
        let upstream_bytes = match Limited::new(upstream_body, self.config.max_response_bytes)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                let detail = format!(
                    "the application's response could not be read: {}",
                    error_chain(error.as_ref())
                );
                let answer = ProxyAnswer {
                    error: ScimError::new(502, None, detail),
                    kind: "bad_response",
                    outcome: "failed",
                };
                return self
                    .answer_forwarded(new, begun, started, answer, as_sent, changes)
                    .await;
            }
        };

        // R16: the rest of a PATCH split to the application's limit; R4: the pages after the
        // first. In order, while each succeeds.
        let first_status = upstream_parts.status;
        let first_headers = upstream_parts.headers.clone();
        let first_bytes = upstream_bytes.clone();
        let (mut upstream_parts, mut upstream_bytes, split_failure, pages) =
            if upstream_parts.status.is_success() && !to_forward.then.is_empty() {
                self.send_rest(
                    &parts,
                    route,
                    &to_forward.then,
                    peer,
                    scheme,
                    (upstream_parts, upstream_bytes),
                )
                .await
            } else {
                (upstream_parts, upstream_bytes, None, Vec::new())
            };
        if to_forward.merge_pages && split_failure.is_none() {
            let parse = |bytes: &Bytes| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
            let rest: Vec<Value> = pages.iter().map(parse).collect();
            let merged = rules::merge_pages(&parse(&first_bytes), &rest);
            upstream_parts.status = first_status;
            upstream_parts.headers = first_headers;
            upstream_bytes = Bytes::from(merged.to_string());
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
                let created = state::fetch_created(
                    &self.client,
                    route,
                    &parts.headers,
                    &upstream_parts.headers,
                    &to_forward,
                )
                .await;
                if let Some(resource) = created {
                    let change = rules::Change {
                        rule: rule.id.clone(),
                        side: rules::Side::Response,
                        pointer: String::new(),
                        before: answered,
                        after: Some(resource.clone()),
                    };
                    changes.extend(recorded_changes(&[change], enforce));
                    if enforce {
                        upstream_bytes = Bytes::from(resource.to_string());
                        upstream_parts
                            .headers
                            .insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
                    }
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
        changes.extend(recorded_changes(&returned.changes, enforce));
        let mut headers = response_headers(&upstream_parts.headers);
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
        let (response_body, response_json) = redact::body_of(&returned_bytes, returned_json);
        let (learned_id, learned_user) = learn_from_response(&classification, response_json.as_ref());
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
            let state = state::fetch(&self.client, route, idp_headers, &received.path).await;
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

    /// Sends the requests after the first (R16's parts, R4's pages), in order, stopping at the
    /// first that fails. Returns the response for the IdP — the last one, or the failure, so
    /// that a PATCH only partly applied is never answered as a success — what failed, if
    /// anything did, and the bodies of the ones that succeeded.
    async fn send_rest(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        rest: &[rules::Request],
        peer: SocketAddr,
        scheme: &'static str,
        first: (http::response::Parts, Bytes),
    ) -> (http::response::Parts, Bytes, Option<String>, Vec<Bytes>) {
        let total = rest.len() + 1;
        let mut last = first;
        let mut bodies = Vec::with_capacity(rest.len());
        for (index, next) in rest.iter().enumerate() {
            let number = index + 2;
            let what = |detail: String| {
                format!("request {number} of {total} of the split PATCH {detail}; the ones before it were applied")
            };
            let body = next
                .body
                .as_ref()
                .map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
            let built = build_forward(parts, body, route, next, peer, scheme)
                .and_then(|request| with_content_type(request, next.content_type.as_deref()));
            let sent = match built {
                Ok(request) => tokio::time::timeout(route.timeout, self.client.request(request))
                    .await
                    .map_err(|_| what("timed out".to_owned()))
                    .and_then(|sent| sent.map_err(|error| what(format!("failed: {}", error_chain(&error))))),
                Err(detail) => Err(what(format!("could not be built: {detail}"))),
            };
            let read = match sent {
                Ok(response) => {
                    let (response_parts, body) = response.into_parts();
                    match Limited::new(body, self.config.max_response_bytes).collect().await {
                        Ok(collected) => Ok((response_parts, collected.to_bytes())),
                        Err(error) => Err(what(format!("could not be read: {}", error_chain(error.as_ref())))),
                    }
                }
                Err(detail) => Err(detail),
            };
            match read {
                Ok((response_parts, bytes)) if response_parts.status.is_success() => {
                    bodies.push(bytes.clone());
                    last = (response_parts, bytes);
                }
                Ok((response_parts, bytes)) => {
                    let detail = what(format!("was refused with {}", response_parts.status));
                    return (response_parts, bytes, Some(detail), bodies);
                }
                Err(detail) => {
                    let error = ScimError::new(502, None, detail.clone());
                    let (response_parts, body) = error_response(&error, "split_patch_failed").into_parts();
                    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                    return (response_parts, bytes, Some(detail), bodies);
                }
            }
        }
        (last.0, last.1, None, bodies)
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
        let outcome = completion.outcome.clone();
        let (durable, fail_closed) = (self.durable(&new), self.fail_closed(&new));
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
                        let detail = format!("the application answered but its response could not be recorded ({error}); the request may have been applied");
                        return error_response(&ScimError::new(503, None, detail), "record_failed");
                    }
                    tracing::error!(%error, "The response could not be recorded; releasing it anyway (fail_closed = false).");
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

    /// A refusal before anything was recorded or forwarded: recorded whole.
    async fn answer(&self, new: NewExchange, started: Instant, answer: ProxyAnswer) -> Response<Full<Bytes>> {
        let response = error_response(&answer.error, answer.kind);
        let completion = self.answer_completion(&new, started, &answer, None, &response);
        let route = new.route.clone().unwrap_or_else(|| "-".to_owned());
        let idp = new.idp.clone().unwrap_or_else(|| "-".to_owned());
        let method = new.method.clone();
        let lifecycle = new.lifecycle.clone();
        self.alerts
            .consider(self.route_named(new.route.as_deref()), &new, &completion);
        let write = Write::Whole(Box::new(new), Box::new(completion));
        match self.recorder.mode() {
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
        let response = error_response(&answer.error, answer.kind);
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
        let response = error_response(&answer.error, answer.kind);
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
        Completion {
            id: new.id.clone(),
            duration_ms: elapsed_ms(started),
            forwarded_headers,
            forwarded_body: None,
            changes: json!([]),
            upstream_status: None,
            status: answer.error.status,
            response_headers: self.redactor.headers(response.headers()),
            response_body: Some(answer.error.to_json().to_string()),
            outcome: answer.outcome.to_owned(),
            findings: json!([]),
            bulk_operations: None,
            error: Some(format!("{}: {}", answer.kind, answer.error.detail)),
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

    fn route_prefixes(&self) -> String {
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

/// Whether a path has a `.` or `..` segment, percent-encoded or not.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        decoded == "." || decoded == ".."
    })
}

pub(crate) fn relative_path(path: &str, prefix: &str) -> String {
    let rest = &path[prefix.trim_end_matches('/').len().min(path.len())..];
    if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    }
}

/// The request as the application receives it.
fn build_forward(
    parts: &http::request::Parts,
    body: Bytes,
    route: &Route,
    to_forward: &rules::Request,
    peer: SocketAddr,
    scheme: &'static str,
) -> Result<Request<Full<Bytes>>, String> {
    let (rest, query) = (&to_forward.path, to_forward.query.as_deref());
    let base = route.upstream.to_string();
    let mut uri = format!("{}{rest}", base.trim_end_matches('/'));
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(query);
    }
    // The rules may change the method (N20: PATCH → PUT for an application without PATCH).
    let method = http::Method::from_bytes(to_forward.method.as_bytes())
        .map_err(|_| format!("invalid method {}", to_forward.method))?;
    let mut builder = Request::builder().method(method).uri(&uri);
    let headers = builder
        .headers_mut()
        .ok_or_else(|| format!("cannot build a request to {uri}"))?;
    let listed = connection_listed(&parts.headers);
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || listed.iter().any(|l| l == lower) || name == HOST || name == CONTENT_LENGTH {
            continue;
        }
        if name == AUTHORIZATION && route.upstream_auth.is_some() {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let forwarded_for = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    set(headers, "x-forwarded-for", &forwarded_for);
    set(headers, "x-forwarded-proto", scheme);
    headers.remove("x-forwarded-host");
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    // HTTP/2 carries the host in the :authority pseudo-header, which hyper puts in the URI.
    if let Some(host) = host.or_else(|| parts.uri.authority().map(|a| a.to_string())) {
        set(headers, "x-forwarded-host", &host);
    }
    set_upstream_auth(headers, route);
    if let Some(version) = &to_forward.if_match {
        set(headers, "if-match", version);
    }
    builder
        .body(Full::new(body))
        .map_err(|error| format!("cannot build a request to {uri}: {error}"))
}

/// The route's credentials for the application, replacing the IdP's (which stay when the
/// route has none).
pub(crate) fn set_upstream_auth(headers: &mut HeaderMap, route: &Route) {
    match &route.upstream_auth {
        Some(UpstreamAuth::Bearer(token)) => set(headers, "authorization", &format!("Bearer {}", token.expose())),
        Some(UpstreamAuth::Basic { username, password }) => {
            set(
                headers,
                "authorization",
                &format!(
                    "Basic {}",
                    base64(format!("{username}:{}", password.expose()).as_bytes())
                ),
            );
        }
        Some(UpstreamAuth::Header { name, value }) => set(headers, name, value.expose()),
        None => {}
    }
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The application's response headers, less those that belong to its connection.
fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len() + 1);
    for (name, value) in upstream {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || listed.iter().any(|l| l == lower) || name == CONTENT_LENGTH {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
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

/// Compares `Authorization: Bearer <token>` in constant time.
fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(presented) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(presented) = presented
        .strip_prefix("Bearer ")
        .or_else(|| presented.strip_prefix("bearer "))
    else {
        return false;
    };
    constant_time_eq(presented.trim().as_bytes(), token.expose().as_bytes())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

/// Standard base64 (RFC 4648 §4), for Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn dot_segments_are_caught() {
        for path in ["/../admin", "/Users/..", "/./Users", "/%2e%2e/admin", "/Users/%2E"] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in ["/Users/a.b", "/Users/..x", "/"] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path("/entra/Users/1", "/entra"), "/Users/1");
        assert_eq!(relative_path("/entra", "/entra/"), "/");
        assert_eq!(relative_path("/Users", ""), "/Users");
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut upstream = HeaderMap::new();
        upstream.insert("connection", "close, x-private".parse().unwrap());
        upstream.insert("x-private", "1".parse().unwrap());
        upstream.insert("keep-alive", "timeout=5".parse().unwrap());
        upstream.insert("content-type", "application/scim+json".parse().unwrap());
        let kept = response_headers(&upstream);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key("content-type"));
    }
}
