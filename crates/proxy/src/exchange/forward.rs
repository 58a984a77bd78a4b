//! Forward: the request as normalised, sent through `upstream.rs` (the one place a request
//! to an application is built); then what the rules made of one request: R16's other parts
//! of a split PATCH and R4's other pages, one at a time while each succeeds, and R6's read of
//! a created resource the application answered without.

use super::normalise::{recorded_changes, Normalised};
use super::{error_response, ExchangeError, Origin};
use crate::buffers::Reserved;
use crate::config::Route;
use crate::pacing::Patience;
use crate::upstream::{self, OnBehalf, Outbound, UpstreamError};
use crate::{state, Proxy};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use scimtrail_rules as rules;
use scimtrail_scim::{json as scim_json, ScimError};
use serde_json::{json, Value};

/// What was sent to the application, as recorded.
pub(super) struct Sent {
    pub(super) headers: Value,
    /// The body as forwarded, when normalisation changed it (redacted).
    pub(super) body: Option<String>,
}

/// The application's answer to everything one IdP request became.
pub(super) struct Forwarded {
    pub(super) sent: Sent,
    /// The answer for the IdP, before the response rules: the last part's, the pages merged,
    /// the created resource read back, or the failure of a part or page.
    pub(super) parts: http::response::Parts,
    pub(super) body: Bytes,
    /// Whether the application encoded its answer (decoded here).
    pub(super) encoded: bool,
    /// What failed of a split PATCH or the pages, after the first succeeded.
    pub(super) split_failure: Option<String>,
    /// The changes forwarding made (R4's pages, R6's read), as recorded.
    pub(super) changes: Vec<Value>,
}

impl Proxy {
    /// Sends `normalised` and what it became; `Err` when the application gave no whole answer
    /// to the first request, with what was sent, if anything was. The first answer's body is
    /// buffered within `room` (an exchange from the listener's reservation). Each request
    /// waits its turn on a paced route with `patience`.
    pub(super) async fn forward(
        &self,
        route: &Route,
        normalised: &mut Normalised,
        parts: &http::request::Parts,
        origin: Origin,
        room: Option<&mut Reserved>,
        patience: &mut Patience,
    ) -> Result<Forwarded, (ExchangeError, Option<Sent>)> {
        let to_forward = &normalised.to_forward;
        let outbound = Outbound {
            method: &to_forward.method,
            path: &to_forward.path,
            query: to_forward.query.as_deref(),
            body: normalised.forward_bytes.clone(),
            content_type: to_forward.content_type.as_deref(),
            if_match: to_forward.if_match.as_deref(),
            on_behalf: on_behalf(parts, origin),
        };
        let request = upstream::build(route, &outbound).map_err(|why| {
            let error = ScimError::new(502, None, "the request could not be sent to the application");
            (
                ExchangeError::proxy(error, "bad_upstream_request").with_internal(why),
                None,
            )
        })?;
        let sent = Sent {
            headers: self.redactor.headers(request.headers()),
            body: normalised.forwarded_body.take(),
        };
        let first = match self.upstream.send_within(route, request, room, patience).await {
            Ok(answer) => answer,
            // Held back by the route's pacing: nothing went to the application.
            Err(UpstreamError::Paced(refused)) => return Err((ExchangeError::paced(&refused), None)),
            Err(error) => return Err((ExchangeError::application(&error, route), Some(sent))),
        };
        let mut forwarded = Forwarded {
            sent,
            parts: first.parts,
            body: first.body,
            encoded: first.encoded,
            split_failure: None,
            changes: Vec::new(),
        };
        // R16: the rest of a PATCH split to the application's limit; R4: the pages after the
        // first. In order, while each succeeds.
        if forwarded.parts.status.is_success() && !to_forward.then.is_empty() {
            self.send_parts(parts, route, &to_forward.then, origin, &mut forwarded, patience)
                .await;
        }
        if let (Some(pages), true) = (&to_forward.pages, forwarded.parts.status.is_success()) {
            let pages = Pages {
                first_request: to_forward,
                pages,
            };
            self.fetch_pages(parts, route, &pages, origin, &mut forwarded, patience)
                .await;
        }
        self.read_created(route, normalised, &parts.headers, &mut forwarded, patience)
            .await;
        Ok(forwarded)
    }

    /// R16: sends the parts of a split PATCH after the first, in order, stopping at the first
    /// that fails. The answer for the IdP is the last one, or the failure, so that a PATCH only
    /// partly applied is never answered as a success.
    async fn send_parts(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        rest: &[rules::Request],
        origin: Origin,
        forwarded: &mut Forwarded,
        patience: &mut Patience,
    ) {
        let total = rest.len() + 1;
        for (index, next) in rest.iter().enumerate() {
            let number = index + 2;
            let what = |detail: String| {
                format!("request {number} of {total} of the split PATCH {detail}; the ones before it were applied")
            };
            match self
                .send_next(parts, route, next, next.query.as_deref(), origin, patience)
                .await
            {
                Ok((answer, body)) if answer.status.is_success() => (forwarded.parts, forwarded.body) = (answer, body),
                Ok((answer, body)) => {
                    let detail = what(format!("was refused with {}", answer.status));
                    return forwarded.failed(answer, body, detail);
                }
                Err(detail) => return forwarded.failed_unanswered(what(detail)),
            }
        }
    }

    /// R4: fetches the pages after the first, one at a time, until the list or the pages run
    /// out, and merges them into the first; or answers the failure of one.
    async fn fetch_pages(
        &self,
        parts: &http::request::Parts,
        route: &Route,
        pages: &Pages<'_>,
        origin: Origin,
        forwarded: &mut Forwarded,
        patience: &mut Patience,
    ) {
        let Pages { first_request, pages } = *pages;
        let parse = |bytes: &Bytes| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
        let first = parse(&forwarded.body);
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
            match self
                .send_next(parts, route, first_request, Some(&query), origin, patience)
                .await
            {
                Ok((_, bytes)) if !bytes.is_empty() => {
                    let page = parse(&bytes);
                    last_len = page_len(&page);
                    rest.push(page);
                    queries.push(query);
                }
                Ok((answer, body)) if !answer.status.is_success() => {
                    let detail = what(format!("was refused with {}", answer.status));
                    return forwarded.failed(answer, body, detail);
                }
                Ok(_) => break,
                Err(detail) => return forwarded.failed_unanswered(what(detail)),
            }
        }
        forwarded.body = Bytes::from(rules::merge_pages(&first, &rest).to_string());
        if !queries.is_empty() {
            forwarded
                .changes
                .push(json!({"rule": "R4", "side": "request", "op": "added",
                "pointer": "?pages", "before": null, "after": queries, "applied": true}));
        }
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
        patience: &mut Patience,
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
            on_behalf: on_behalf(parts, origin),
        };
        let request = upstream::build(route, &outbound).map_err(|why| format!("could not be built: {why}"))?;
        match self.upstream.send(route, request, patience).await {
            Ok(answer) => Ok((answer.parts, answer.body)),
            Err(error) => {
                tracing::warn!(%error, upstream = %route.upstream, "A further request to the application failed.");
                Err(match error {
                    UpstreamError::Timeout(_) => "timed out".to_owned(),
                    UpstreamError::Unreachable(_) => "could not reach the application".to_owned(),
                    UpstreamError::BadResponse(_) => "was answered with what could not be read".to_owned(),
                    UpstreamError::NoRoom(_) => {
                        "was answered, but the proxy had no room to buffer the answer".to_owned()
                    }
                    UpstreamError::Paced(refused) => format!("was not sent: {}", refused.detail),
                })
            }
        }
    }

    /// R6: a create the application accepted without answering the resource: the resource
    /// read back for the IdP (in enforce mode), and the change recorded either way.
    async fn read_created(
        &self,
        route: &Route,
        normalised: &Normalised,
        idp_headers: &http::HeaderMap,
        forwarded: &mut Forwarded,
        patience: &mut Patience,
    ) {
        let to_forward = &normalised.to_forward;
        let created_rule = normalised
            .profile
            .rules
            .iter()
            .find(|rule| rule.action == rules::Action::Response(rules::ResponseAction::CreatedStatus));
        let is_create = scimtrail_scim::endpoint::is_create(&to_forward.method, &to_forward.path);
        let Some(rule) = created_rule.filter(|_| is_create && forwarded.parts.status.is_success()) else {
            return;
        };
        let answered: Option<Value> = serde_json::from_slice(&forwarded.body).ok();
        if answered.as_ref().and_then(|body| body.get("id")).is_some() {
            return;
        }
        let (created, how) = state::fetch_created(
            &self.upstream,
            route,
            idp_headers,
            &forwarded.parts.headers,
            to_forward,
            patience,
        )
        .await;
        let Some(resource) = created else {
            forwarded
                .changes
                .push(json!({"rule": rule.id, "side": "response", "op": "not_found",
                "pointer": "", "applied": false,
                "detail": format!("the created resource could not be read back: {how}")}));
            return;
        };
        let change = rules::Change {
            rule: rule.id.clone(),
            side: rules::Side::Response,
            pointer: String::new(),
            before: answered,
            after: Some(resource.clone()),
        };
        let mut recorded = recorded_changes(&[change], normalised.enforce, &route.redaction, None);
        for change in &mut recorded {
            change["detail"] = json!(format!("the created resource was {how}"));
        }
        forwarded.changes.extend(recorded);
        if normalised.enforce {
            forwarded.body = Bytes::from(resource.to_string());
            forwarded
                .parts
                .headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
        }
    }
}

impl Forwarded {
    /// A further request was refused: its answer is the IdP's.
    fn failed(&mut self, parts: http::response::Parts, body: Bytes, detail: String) {
        (self.parts, self.body, self.split_failure) = (parts, body, Some(detail));
    }

    /// A further request got no answer: the IdP is told so.
    fn failed_unanswered(&mut self, detail: String) {
        let error = ScimError::new(502, None, detail.as_str());
        let (parts, _) = error_response(&error, "split_request_failed").into_parts();
        self.failed(parts, Bytes::from(error.to_json().to_string()), detail);
    }
}

/// R4: the first request of a list, and the pages it is fetched in.
#[derive(Clone, Copy)]
struct Pages<'a> {
    first_request: &'a rules::Request,
    pages: &'a rules::Pages,
}

/// A request forwarded for the IdP's: its headers carried on, as from its peer.
fn on_behalf(parts: &http::request::Parts, origin: Origin) -> OnBehalf<'_> {
    OnBehalf::Forward {
        parts,
        peer: origin.peer.ip(),
        scheme: origin.scheme,
    }
}

/// How many resources a ListResponse holds.
fn page_len(list: &Value) -> u64 {
    list.as_object()
        .and_then(|list| scim_json::get(list, "Resources"))
        .and_then(Value::as_array)
        .map_or(0, |resources| resources.len() as u64)
}
