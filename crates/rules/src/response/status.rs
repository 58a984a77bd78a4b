//! The outcome as the IdP reads it: 201 on a create (R6), 409 `uniqueness` on a duplicate
//! (R7), the content type it wants (R8), and `Retry-After` in seconds (R14).

use crate::changes::Changes;
use crate::{Request, Response};
use scimtrail_scim::error::ERROR_SCHEMA;
use serde_json::{json, Value};

/// A create (RFC 7644 §3.3): the one answer R6 and R7 repair.
fn is_create(request: &Request) -> bool {
    scimtrail_scim::endpoint::is_create(&request.method, &request.path)
}

// === R6 ===

pub(super) fn created_status(request: &Request, response: &mut Response, changes: &mut Changes) {
    let has_resource = response.body.as_ref().and_then(|b| b.get("id")).is_some();
    if is_create(request) && response.status == 200 && has_resource {
        changes.record("status", Some(json!(200)), Some(json!(201)));
        response.status = 201;
    }
}

// === R7 ===

pub(super) fn uniqueness_conflict(request: &Request, response: &mut Response, changes: &mut Changes) {
    if !is_create(request) || !(response.status == 409 || response.status == 400 || response.status == 500) {
        return;
    }
    let field = |name: &str| {
        response
            .body
            .as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let detail = field("detail");
    let lower = detail.as_deref().unwrap_or_default().to_ascii_lowercase();
    let says_duplicate = [
        "already exists",
        "duplicate",
        "not unique",
        "must be unique",
        "uniqueness",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase));
    if response.status != 409 && !says_duplicate {
        return;
    }
    if response.status == 409 && field("scimType").as_deref() == Some("uniqueness") {
        return;
    }
    let detail = detail.unwrap_or_else(|| "the resource already exists".to_owned());
    let error = json!({"schemas": [ERROR_SCHEMA], "status": "409", "scimType": "uniqueness", "detail": detail});
    if response.status != 409 {
        changes.record("status", Some(json!(response.status)), Some(json!(409)));
        response.status = 409;
    }
    changes.record("", response.body.clone(), Some(error.clone()));
    response.body = Some(error);
    response.has_body = true;
}

// === R8 ===

pub(super) fn content_type(wanted: &str, response: &mut Response, changes: &mut Changes) {
    if response.has_body && response.content_type.as_deref() != Some(wanted) {
        changes.record(
            "header:content-type",
            response.content_type.clone().map(Value::String),
            Some(json!(wanted)),
        );
        response.content_type = Some(wanted.to_owned());
    }
}

// === R14 ===

pub(super) fn integer_retry_after(response: &mut Response, changes: &mut Changes) {
    let Some(value) = response.retry_after.clone() else {
        return;
    };
    if value.trim().parse::<u64>().is_ok() {
        return;
    }
    // Neither seconds nor a date: Okta's own reading of such a value, five minutes.
    let seconds = crate::retry_after_seconds(&value, response.received_at_secs).unwrap_or(300);
    changes.record(
        "header:retry-after",
        Some(json!(value)),
        Some(json!(seconds.to_string())),
    );
    response.retry_after = Some(seconds.to_string());
}
