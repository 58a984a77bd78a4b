//! Alerts: a JSON POST to the route's webhook when a deactivation or deprovision fails or
//! only partly takes effect, when a route sees a request shape it never saw before, and when
//! a reconciliation finds leavers with access.
//!
//! One background task delivers them, retrying with backoff; an exchange never waits for
//! one. A full queue drops the alert (counted: `scimtrail_alerts_total{result="dropped"}`).
//! An alert carries what an operator needs to find the exchange — its id, route, resource,
//! userName, outcome, findings — and never a header or a body: no secret can be in it.

use crate::config::{Route, Webhook};
use crate::metrics::Metrics;
use crate::upstream::UpstreamClient;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request};
use http_body_util::Full;
use scimtrail_intent::{Drift, DriftKind};
use scimtrail_store::{rfc3339, Completion, Exchange, NewExchange, Reconciliation};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Alerts waiting to be delivered, at most.
const QUEUE: usize = 1024;
/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before a retry; doubled each time, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Alert {
    route: String,
    kind: &'static str,
    webhook: Webhook,
    body: Value,
}

/// The sending side; cheap to share.
pub(crate) struct Alerts {
    queue: mpsc::Sender<Alert>,
    metrics: Arc<Metrics>,
}

impl Alerts {
    /// Starts the delivery task; it ends once every `Alerts` is dropped and the queue is
    /// delivered (or given up on).
    pub(crate) fn spawn(client: UpstreamClient, metrics: Arc<Metrics>) -> (Alerts, JoinHandle<()>) {
        let (queue, mut pending) = mpsc::channel::<Alert>(QUEUE);
        let task_metrics = Arc::clone(&metrics);
        let task = tokio::spawn(async move {
            while let Some(alert) = pending.recv().await {
                let result = deliver(&client, &alert).await;
                task_metrics.alert(&alert.route, alert.kind, result);
            }
        });
        (Alerts { queue, metrics }, task)
    }

    /// Queues the alerts this exchange calls for, if its route has a webhook.
    pub(crate) fn consider(&self, route: Option<&Route>, new: &NewExchange, completion: &Completion) {
        // Synthetic traffic tests the application; what it finds is its own report.
        if new.synthetic.is_some() {
            return;
        }
        self.queue_all(route, alerts_for(&Facts::of_exchange(new, completion)));
    }

    /// Queues the alert of a deactivation or deprovision found in flight at start-up (now
    /// `interrupted`): it may or may not have reached the application.
    pub(crate) fn consider_interrupted(&self, route: Option<&Route>, exchange: &Exchange) {
        let mut facts = Facts::of_record(exchange);
        facts.outcome = "interrupted";
        self.queue_all(route, alerts_for(&facts));
    }

    /// Queues one `active_mismatch` alert for a reconciliation run that found users the IdP
    /// deactivated or deleted active in the application — leavers with access — naming the
    /// first of them (`leavers`) and counting all: one alert per run, never one per user, so
    /// that a run finding thousands does not flood the queue and drop the rest.
    pub(crate) fn leavers_with_access(&self, route: &Route, run: &Reconciliation, leavers: &[Drift]) {
        let count = run.counts.get(DriftKind::ActiveMismatch.as_str()).copied().unwrap_or(0);
        if count == 0 {
            return;
        }
        let named: Vec<Value> = leavers
            .iter()
            .map(|drift| {
                json!({"resource_type": drift.resource_type, "resource_id": drift.resource_id,
                    "user_name": drift.name, "intended": drift.intended, "actual": drift.actual,
                    "established_by": drift.established_by})
            })
            .collect();
        let body = json!({
            "alert": "active_mismatch",
            "reconciliation": run.id,
            "started_at": rfc3339(run.started_at_ms),
            "route": run.route,
            "count": count,
            "users": named,
            "repair": run.repair,
        });
        self.queue_all(Some(route), vec![("active_mismatch", body)]);
    }

    fn queue_all(&self, route: Option<&Route>, alerts: Vec<(&'static str, Value)>) {
        let Some((route, webhook)) = route.and_then(|r| r.webhook.as_ref().map(|w| (r, w))) else {
            return;
        };
        for (kind, body) in alerts {
            let alert = Alert {
                route: route.name.clone(),
                kind,
                webhook: webhook.clone(),
                body,
            };
            if self.queue.try_send(alert).is_err() {
                tracing::warn!(route = %route.name, kind, "The alert queue is full; an alert was dropped.");
                self.metrics.alert(&route.name, kind, "dropped");
            }
        }
    }
}

/// What an alert says of an exchange: identifying fields, the outcome and the findings —
/// never a header or a body.
pub(crate) struct Facts<'a> {
    id: &'a str,
    received_at_ms: i64,
    route: Option<&'a str>,
    idp: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    resource_type: Option<&'a str>,
    resource_id: Option<&'a str>,
    user_name: Option<&'a str>,
    lifecycle: Option<&'a str>,
    outcome: &'a str,
    status: Option<u16>,
    findings: &'a [Value],
    replay_of: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn of_exchange(new: &'a NewExchange, completion: &'a Completion) -> Facts<'a> {
        Facts::of(new, Some(completion), &completion.outcome)
    }

    fn of_record(exchange: &'a Exchange) -> Facts<'a> {
        Facts::of(&exchange.begun, exchange.completion(), exchange.outcome())
    }

    fn of(new: &'a NewExchange, completion: Option<&'a Completion>, outcome: &'a str) -> Facts<'a> {
        let learned = |field: fn(&Completion) -> &Option<String>| completion.and_then(|done| field(done).as_deref());
        Facts {
            id: &new.id,
            received_at_ms: new.received_at_ms,
            route: new.route.as_deref(),
            idp: new.idp.as_deref(),
            method: &new.method,
            path: &new.path,
            resource_type: new.resource_type.as_deref(),
            resource_id: new.resource_id.as_deref().or(learned(|done| &done.resource_id)),
            user_name: new.user_name.as_deref().or(learned(|done| &done.user_name)),
            lifecycle: new.lifecycle.as_deref(),
            outcome,
            status: completion.map(|done| done.status),
            findings: completion
                .and_then(|done| done.findings.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default(),
            replay_of: new.replay_of.as_deref(),
        }
    }
}

/// The alerts one recorded exchange calls for: `deprovision_failed` (a deactivation or
/// deprovision that did not take effect: failed, unreachable, rejected, interrupted),
/// `deprovision_partial` (answered 2xx, yet not applied), and `shape_drift`.
pub(crate) fn alerts_for(facts: &Facts<'_>) -> Vec<(&'static str, Value)> {
    let mut kinds = Vec::new();
    if matches!(facts.lifecycle, Some("deactivate" | "deprovision")) && facts.outcome != "ok" {
        kinds.push(if facts.outcome == "partial" {
            "deprovision_partial"
        } else {
            "deprovision_failed"
        });
    }
    if facts.findings.iter().any(|f| f["kind"] == "shape_drift") {
        kinds.push("shape_drift");
    }
    kinds
        .into_iter()
        .map(|kind| {
            let body = json!({
                "alert": kind,
                "exchange_id": facts.id,
                "received_at": rfc3339(facts.received_at_ms),
                "route": facts.route,
                "idp": facts.idp,
                "method": facts.method,
                "path": facts.path,
                "resource_type": facts.resource_type,
                "resource_id": facts.resource_id,
                "user_name": facts.user_name,
                "lifecycle": facts.lifecycle,
                "outcome": facts.outcome,
                "status": facts.status,
                "findings": facts.findings,
                "replay_of": facts.replay_of,
            });
            (kind, body)
        })
        .collect()
}

/// Sends one alert until it is accepted (2xx), refused for good (a 4xx other than 408 and
/// 429), or out of attempts. Returns `delivered`, `refused` or `failed`.
async fn deliver(client: &UpstreamClient, alert: &Alert) -> &'static str {
    let body = Bytes::from(alert.body.to_string());
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=alert.webhook.max_attempts {
        let mut request = match Request::post(alert.webhook.url.clone()).body(Full::new(body.clone())) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(%error, "An alert could not be built.");
                return "failed";
            }
        };
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(token) = &alert.webhook.bearer_token {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                headers.insert(AUTHORIZATION, value);
            }
        }
        let why = match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => return "delivered",
            Ok(Ok(response)) => {
                let status = response.status();
                if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
                    tracing::error!(%status, route = %alert.route, kind = alert.kind, "The webhook refused an alert.");
                    return "refused";
                }
                format!("answered {status}")
            }
            Ok(Err(error)) => format!("could not be reached: {error}"),
            Err(_) => "did not answer in time".to_owned(),
        };
        tracing::warn!(attempt, route = %alert.route, kind = alert.kind, why, "An alert was not delivered.");
        if attempt < alert.webhook.max_attempts {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(lifecycle: Option<&str>, outcome: &str, findings: Value) -> (NewExchange, Completion) {
        let new = NewExchange {
            id: "x".into(),
            received_at_ms: 0,
            instance: "i".into(),
            route: Some("r".into()),
            idp: Some("okta".into()),
            method: "PATCH".into(),
            path: "/Users/1".into(),
            query: None,
            resource_type: Some("Users".into()),
            resource_id: Some("1".into()),
            user_name: None,
            operation: "patch".into(),
            lifecycle: lifecycle.map(str::to_owned),
            request_headers: json!([["authorization", "Bearer sha256:1a2b3c4d"]]),
            request_body: Some("{\"password\":\"[REDACTED]\"}".into()),
            replay_of: None,
            parent_id: None,
            client: None,
            rules_version: None,
            reconcile_of: None,
            synthetic: None,
        };
        let completion = Completion {
            id: "x".into(),
            duration_ms: 1,
            forwarded_headers: None,
            forwarded_body: None,
            changes: json!([]),
            upstream_status: Some(200),
            status: 200,
            response_headers: json!([]),
            response_body: None,
            outcome: outcome.into(),
            findings,
            bulk_operations: None,
            error: None,
            resource_id: None,
            user_name: Some("leaver@example.com".into()),
            paced_ms: None,
        };
        (new, completion)
    }

    #[test]
    fn deprovisions_that_did_not_take_effect_and_shape_drift_alert() {
        let cases = [
            (Some("deactivate"), "unreachable", json!([]), vec!["deprovision_failed"]),
            (Some("deprovision"), "failed", json!([]), vec!["deprovision_failed"]),
            (
                Some("deactivate"),
                "partial",
                json!([{"kind": "deprovision_not_applied"}]),
                vec!["deprovision_partial"],
            ),
            (Some("deactivate"), "ok", json!([]), vec![]),
            (Some("update"), "failed", json!([]), vec![]),
            (
                None,
                "ok",
                json!([{"kind": "shape_drift", "detail": "new"}]),
                vec!["shape_drift"],
            ),
        ];
        for (lifecycle, outcome, findings, expected) in cases {
            let (new, completion) = exchange(lifecycle, outcome, findings);
            let kinds: Vec<&str> = alerts_for(&Facts::of_exchange(&new, &completion))
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(kinds, expected, "{lifecycle:?} {outcome}");
        }
    }

    #[test]
    fn an_alert_carries_no_header_and_no_body() {
        let (new, completion) = exchange(Some("deactivate"), "failed", json!([]));
        let (_, body) = alerts_for(&Facts::of_exchange(&new, &completion)).remove(0);
        let text = body.to_string();
        assert!(!text.contains("sha256") && !text.contains("REDACTED"), "{text}");
        assert_eq!(body["user_name"], "leaver@example.com");
        assert_eq!(body["exchange_id"], "x");
    }
}
