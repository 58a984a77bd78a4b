//! Read-back (a route's `read_back = true`): after a write the application said succeeded, a
//! GET of the resource as the application now has it — for applications that answer a write
//! without the resource, or with one that is not what they stored. Recorded as a child
//! exchange of the write (`parent_id`); the write's findings read it (`findings::ReadBack`).

use crate::clock::{elapsed_ms, now_ms};
use crate::pacing::Patience;
use crate::state::Unread;
use crate::{state, upstream, Proxy, Route};
use http::HeaderMap;
use scimtrail_analysis::findings::ReadBack;
use scimtrail_store::{Completion, NewExchange, Write};
use serde_json::{json, Value};
use std::time::Instant;

impl Proxy {
    /// GETs `path` (relative to the route) for the write `parent`, records the GET as its
    /// child, and returns what it found (`None` when the application could not be read). The
    /// GET waits its turn on a paced route with the write's `patience`.
    pub(super) async fn read_back(
        &self,
        route: &Route,
        parent: &NewExchange,
        path: &str,
        idp_headers: &HeaderMap,
        patience: &mut Patience,
    ) -> Option<ReadBack> {
        let started = Instant::now();
        let mark = patience.mark();
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let request = upstream::build(route, &state::get(path, query, idp_headers));
        let headers = request.as_ref().map(|r| r.headers().clone()).unwrap_or_default();
        let read = match request {
            Ok(request) => state::read_built(&self.upstream, route, request, patience).await,
            Err(why) => Err(Unread::Failed(format!("GET {path}: {why}"))),
        };
        let found = match &read {
            Ok(Some(resource)) => Some(ReadBack::Resource(resource.clone())),
            Ok(None) => Some(ReadBack::Gone),
            Err(_) => None,
        };
        // A deletion read back as gone went as it should; any other write should find its resource.
        let (status, outcome, body, error) = match read {
            Ok(Some(mut resource)) => {
                route.redaction.redact(&mut resource);
                (200, "ok", Some(resource), None)
            }
            Ok(None) if parent.method == "DELETE" => (404, "ok", None, None),
            Ok(None) => (404, "failed", None, None),
            Err(Unread::Paced(refused)) => (429, "unreachable", None, Some(format!("read_back: {}", refused.detail))),
            Err(Unread::Failed(reason)) => (502, "unreachable", None, Some(format!("read_back: {reason}"))),
        };
        let child = NewExchange {
            id: uuid::Uuid::now_v7().to_string(),
            received_at_ms: now_ms(),
            instance: self.config.instance.clone(),
            route: Some(route.name.clone()),
            idp: Some(route.idp.clone()),
            method: "GET".to_owned(),
            path: format!("{}{path}", route.path_prefix),
            query: None,
            resource_type: parent.resource_type.clone(),
            resource_id: body
                .as_ref()
                .and_then(|b| b.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| parent.resource_id.clone()),
            user_name: body
                .as_ref()
                .and_then(|b| b.get("userName"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            operation: "get".to_owned(),
            lifecycle: None,
            request_headers: self.redactor.headers(&headers),
            request_body: None,
            replay_of: None,
            parent_id: Some(parent.id.clone()),
            client: None,
            rules_version: None,
            reconcile_of: parent.reconcile_of.clone(),
            synthetic: parent.synthetic.clone(),
        };
        let completion = Completion {
            id: child.id.clone(),
            duration_ms: elapsed_ms(started),
            forwarded_headers: Some(self.redactor.headers(&headers)),
            forwarded_body: None,
            changes: json!([]),
            upstream_status: (status < 429).then_some(status),
            status,
            response_headers: json!([]),
            response_body: body.map(|b| b.to_string()),
            outcome: outcome.to_owned(),
            findings: json!([]),
            bulk_operations: None,
            error,
            resource_id: None,
            user_name: None,
            paced_ms: patience.paced_ms_since(mark),
        };
        self.metrics
            .exchange(&route.name, &route.idp, "GET", outcome, started.elapsed());
        // Queued before the write's own completion, so committed with it or before it; when the
        // write waits for the store, so does this, so that it cannot be dropped from a full queue.
        let write = Write::Whole(Box::new(child), Box::new(completion));
        if let Err(error) = self.record(self.recorded_as(parent), write).await {
            tracing::error!(%error, "The read-back could not be recorded.");
        }
        found
    }
}
