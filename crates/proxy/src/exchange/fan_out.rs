//! Bulk fan-out: for an application without `/Bulk` (its target profile says `bulk = false`),
//! a BulkRequest is carried out one operation at a time, each as an exchange of its own —
//! normalised by the route's rules, recorded, linked to the bulk request (`parent_id`) —
//! in order, `bulkId:` references resolved from the ids earlier operations created, stopping
//! once `failOnErrors` errors are reached (RFC 7644 §3.7). The IdP receives a BulkResponse.

use super::normalise::Normalised;
use super::{ExchangeError, Exchanged, Link, Origin, Recording};
use crate::clock::elapsed_ms;
use crate::{redact, Proxy, Route};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use scimtrail_analysis::classify::classify;
use scimtrail_analysis::{bulk, findings};
use scimtrail_rules::Profile;
use scimtrail_scim::message::{bulk_response, BulkOperation, BulkOperationResult, BulkRequest};
use scimtrail_scim::{ScimError, ScimType};
use scimtrail_store::Completion;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What a fan-out did: the BulkResponse for the IdP, and the exchange of each operation
/// (`None` for one refused before it was sent).
pub(crate) struct FannedOut {
    pub(crate) response: Value,
    pub(crate) exchanges: Vec<Option<String>>,
}

impl Proxy {
    /// Answers a bulk request by fanning it out (see the module's documentation) and finishes
    /// it with each operation's outcome and exchange.
    pub(super) async fn finish_fanned_out(
        &self,
        mut recording: Recording<'_>,
        route: &Route,
        normalised: &Normalised,
        idp_headers: &HeaderMap,
        origin: Origin,
    ) -> Exchanged {
        let bulk = normalised.received_bulk.as_ref();
        let pinned = Some(Arc::clone(&normalised.profile));
        let done = match self
            .fan_out(route, &mut recording, bulk, idp_headers, origin, pinned)
            .await
        {
            Ok(done) => done,
            Err(error) => {
                let error = ExchangeError::idp(error, "bad_bulk_request");
                return self.finish_error(recording, error, None, Vec::new()).await;
            }
        };
        let mut operations = bulk::operations(bulk, Some(&done.response));
        if let Some(Value::Array(entries)) = operations.as_mut() {
            for (entry, exchange) in entries
                .iter_mut()
                .zip(done.exchanges.iter().chain(std::iter::repeat(&None)))
            {
                entry["exchange"] = json!(exchange);
            }
        }
        let outcome = operations.as_ref().and_then(bulk::outcome).unwrap_or("ok");
        let found = findings::findings(&findings::Observed {
            method: "POST",
            path: "/Bulk",
            filter: None,
            request: bulk,
            lifecycle: None,
            status: 200,
            response: Some(&done.response),
            has_body: true,
            read_back: None,
            redaction: &route.redaction,
        });
        for finding in &found {
            self.metrics.finding(&route.name, &route.idp, finding.kind);
        }
        let text = done.response.to_string();
        let mut response = Response::new(Full::new(Bytes::from(text.clone())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
        let completion = Completion {
            id: recording.new.id.clone(),
            duration_ms: elapsed_ms(recording.started),
            forwarded_headers: None,
            forwarded_body: None,
            changes: json!([]),
            upstream_status: None,
            status: 200,
            response_headers: self.redactor.headers(response.headers()),
            response_body: redact::body(text.as_bytes(), &route.redaction),
            outcome: outcome.to_owned(),
            findings: Value::Array(found.iter().map(findings::Finding::to_json).collect()),
            bulk_operations: operations,
            error: None,
            resource_id: None,
            user_name: None,
            paced_ms: None,
        };
        self.finish(recording, completion, response).await
    }

    /// Why an operation is refused before it is sent: a `bulkId:` reference no earlier
    /// operation created, a bulk request inside a bulk request, a path on another route.
    fn refused_operation(
        &self,
        route: &Route,
        operation: &BulkOperation,
        path: &str,
        unresolved: &[String],
    ) -> Option<ScimError> {
        if let Some(reference) = unresolved.first() {
            Some(ScimError::new(
                409,
                Some(ScimType::InvalidValue),
                format!("bulkId \"{reference}\" does not name a resource an earlier operation of this request created"),
            ))
        } else if classify(operation.method.as_str(), path, None, None)
            .resource_type
            .as_deref()
            == Some("Bulk")
        {
            // Read as the classifier reads every path: `/BULK`, `/Bulk/x` are `/Bulk` too.
            Some(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("\"{path}\" is a bulk request, which a bulk operation cannot be"),
            ))
        } else if self
            .route_for(&format!("{}{path}", route.path_prefix))
            .map(|r| r.name.as_str())
            != Some(route.name.as_str())
        {
            // It would land on another route, past that route's own IdP token.
            Some(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("\"{path}\" would leave route {} for another route", route.name),
            ))
        } else {
            None
        }
    }

    /// Carries out `bulk` (a BulkRequest as received) on `route`, one operation at a time,
    /// each under `profile` (the bulk request's), made for the bulk request's `recording` and
    /// waiting its turn on a paced route with the bulk request's patience. `Err` when it is
    /// not a valid BulkRequest.
    pub(crate) async fn fan_out(
        &self,
        route: &Route,
        recording: &mut Recording<'_>,
        bulk: Option<&Value>,
        idp_headers: &HeaderMap,
        origin: Origin,
        profile: Option<Arc<Profile>>,
    ) -> Result<FannedOut, ScimError> {
        let parent = recording.new.id.clone();
        let request = match bulk {
            Some(body) => BulkRequest::from_json(body)?,
            None => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    "the body must be a BulkRequest (JSON)",
                ))
            }
        };
        let mut resolved: HashMap<String, String> = HashMap::new();
        let mut results = Vec::with_capacity(request.operations.len());
        let mut exchanges = Vec::with_capacity(request.operations.len());
        let mut errors = 0;
        for operation in &request.operations {
            if request.fail_on_errors.is_some_and(|limit| errors >= limit) {
                break;
            }
            let refuse = |error: ScimError| BulkOperationResult::failed(operation, &error);
            let (path, data, unresolved) = operation.resolved(&resolved);
            let refused = self.refused_operation(route, operation, &path, &unresolved);
            if let Some(error) = refused {
                errors += 1;
                results.push(refuse(error));
                exchanges.push(None);
                continue;
            }
            let built = single_request(
                route,
                operation.method.as_str(),
                &path,
                data,
                operation.version.as_deref(),
                idp_headers,
            );
            let single = match built {
                Ok(single) => single,
                Err(error) => {
                    errors += 1;
                    results.push(refuse(error));
                    exchanges.push(None);
                    continue;
                }
            };
            let link = Link {
                replay_of: None,
                parent_id: Some(parent.to_owned()),
                reconcile_of: recording.new.reconcile_of.clone(),
                synthetic: recording.new.synthetic.clone(),
                profile: profile.clone(),
            };
            // Boxed: an exchange can fan out, which runs exchanges.
            let answered = Box::pin(self.run_exchange(single, origin, link, recording.patience)).await;
            exchanges.push(Some(answered.id));
            let (result, created) = operation_result(operation, answered.response).await;
            if result.status >= 400 {
                errors += 1;
            } else if let (Some(bulk_id), Some(id)) = (&operation.bulk_id, created) {
                resolved.insert(bulk_id.clone(), id);
            }
            results.push(result);
        }
        Ok(FannedOut {
            response: bulk_response(&results),
            exchanges,
        })
    }
}

/// What the application answered an operation, as its BulkResponse entry, and the id of
/// the resource it created, if it did.
async fn operation_result(
    operation: &BulkOperation,
    response: Response<Full<Bytes>>,
) -> (BulkOperationResult, Option<String>) {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let status = parts.status.as_u16();
    let location = text(LOCATION.as_str()).or_else(|| {
        json.as_ref()
            .and_then(|j| j.pointer("/meta/location"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let created = json
        .as_ref()
        .and_then(|j| j.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let result = BulkOperationResult {
        method: operation.method,
        bulk_id: operation.bulk_id.clone(),
        version: text(ETAG.as_str()),
        location,
        status,
        response: (status >= 400).then(|| json.unwrap_or(Value::Null)),
    };
    (result, created)
}

/// One operation as the request an IdP would have sent for it, on the route's prefix, with
/// the bulk request's headers (its credentials among them).
fn single_request(
    route: &Route,
    method: &str,
    path: &str,
    data: Option<Value>,
    version: Option<&str>,
    idp_headers: &HeaderMap,
) -> Result<Request<Full<Bytes>>, ScimError> {
    let uri = format!("{}{path}", route.path_prefix);
    let body = data.map_or_else(Bytes::new, |d| Bytes::from(d.to_string()));
    let mut request = Request::builder()
        .method(method)
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|error| {
            ScimError::bad_request(
                ScimType::InvalidPath,
                format!("\"{path}\" is not a usable path: {error}"),
            )
        })?;
    let headers = request.headers_mut();
    *headers = idp_headers.clone();
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    if let Some(version) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(IF_MATCH, version);
    }
    Ok(request)
}
