//! Rebuilding the request to send again from its record. Pure: what is left out (superseded
//! operations, members changed later, what was redacted), the headers a replay may carry,
//! and the request itself.

use crate::redact::Redactor;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::Full;
use scimtrail_scim::json as scim_json;
use scimtrail_scim::message::resolve_bulk_ids;
use scimtrail_scim::redact::Redaction;
use scimtrail_store::Exchange;
use serde_json::Value;
use std::collections::HashMap;

/// Headers never taken from a record into a replay: the hop-by-hop and framing ones, the
/// forwarding ones (the replay sets its own), the version the IdP meant (stale by now).
const NOT_REPLAYED: [&str; 16] = [
    "content-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "if-match",
    "if-none-match",
];

/// The recorded request headers a replay sends: no secret (fingerprints are not
/// credentials; the route supplies its own), nothing hop-by-hop or stale.
pub(super) fn headers(original: &Exchange, redactor: &Redactor) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for pair in original
        .begun
        .request_headers
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (Some(name), Some(value)) = (pair.get(0).and_then(Value::as_str), pair.get(1).and_then(Value::as_str))
        else {
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if NOT_REPLAYED.contains(&lower.as_str()) || redactor.is_secret(&lower) || lower.starts_with("scimtrail-") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(lower.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
    headers
}

/// What of a recorded request a replay leaves out (see `replay_plan::Step::Send`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LeftOut<'a> {
    pub(super) operations: &'a [usize],
    pub(super) members: &'a [(usize, Vec<String>)],
}

/// The request to send again, rebuilt from the record: the path after the route's prefix,
/// the headers and the body.
pub(super) struct Rebuilt {
    pub(super) rest: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Value>,
}

/// Why an exchange is not sent: the kind, and the reason in words.
pub(super) type SkipReason = (&'static str, String);

/// The request body to send again: without the left-out PATCH operations, and without what
/// was redacted when recorded (passwords, the route's `redact_attributes`). `Err` with the
/// skip kind and reason when nothing sendable is left, or when leaving a redacted attribute
/// out would clear it (a PUT replaces the whole resource).
pub(super) fn replay_body(
    original: &Exchange,
    leave_out: LeftOut<'_>,
    redaction: &Redaction,
) -> Result<(Option<Value>, Vec<String>), SkipReason> {
    let left_out = leave_out.operations;
    let Some(text) = original.begun.request_body.as_deref() else {
        return Ok((None, Vec::new()));
    };
    if text == scimtrail_store::ERASED {
        return Err((
            "not_replayable",
            "its record was erased (scimtrail store erase): send it again from the IdP".to_owned(),
        ));
    }
    let mut body: Value = serde_json::from_str(text).map_err(|_| {
        (
            "not_replayable",
            "its body was not JSON, or held a password and was redacted whole".to_owned(),
        )
    })?;
    let mut notes = Vec::new();
    if !left_out.is_empty() && original.begun.operation != "bulk" {
        if let Some(ops) = body
            .as_object_mut()
            .and_then(|members| scim_json::get_mut(members, "Operations"))
            .and_then(Value::as_array_mut)
        {
            for (index, ids) in leave_out.members {
                if let Some(op) = ops.get_mut(*index) {
                    without_members(op, ids);
                }
            }
            let mut index = 0;
            ops.retain(|_| {
                let keep = !left_out.contains(&index);
                index += 1;
                keep
            });
        }
    }
    if original.begun.operation == "bulk" {
        without_bulk_operations(&mut body, left_out, original.bulk_operations());
    }
    let cleared = puts_clearing(original, &body, redaction);
    if !cleared.is_empty() {
        return Err((
            "not_replayable",
            format!(
                "{} {} not stored ([route.record] redact_attributes), and a PUT without {} would clear {} at the application: send it again from the IdP",
                cleared.join(", "),
                if cleared.len() == 1 { "is" } else { "are" },
                if cleared.len() == 1 { "it" } else { "them" },
                if cleared.len() == 1 { "it" } else { "them" },
            ),
        ));
    }
    let left_out_attributes = redaction.strip_redacted(&mut body);
    for attribute in &left_out_attributes {
        notes.push(if attribute == "password" {
            "the password was redacted when recorded and is left out: set it again from the IdP".to_owned()
        } else {
            format!("{attribute} is not stored ([route.record] redact_attributes) and is left out: set it again from the IdP")
        });
    }
    let empty_patch =
        original.begun.method == "PATCH" && scimtrail_scim::write_keys::operations(Some(&body)).is_empty();
    if empty_patch {
        return Err((
            "nothing_to_send",
            format!(
                "nothing is left to send once the redacted {} left out",
                match left_out_attributes.as_slice() {
                    [one] if one == "password" => "password is".to_owned(),
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            ),
        ));
    }
    Ok((Some(body), notes))
}

/// The redacted attributes (not passwords) a PUT in `body` — the request itself, or a bulk
/// operation — would leave out, and so clear.
fn puts_clearing(original: &Exchange, body: &Value, redaction: &Redaction) -> Vec<String> {
    let chosen = |resource: Option<&Value>| {
        let mut resource = resource.cloned().unwrap_or(Value::Null);
        let mut left_out = redaction.strip_redacted(&mut resource);
        left_out.retain(|attribute| attribute != "password");
        left_out
    };
    if original.begun.method.eq_ignore_ascii_case("PUT") {
        return chosen(Some(body));
    }
    if original.begun.operation != "bulk" {
        return Vec::new();
    }
    let mut cleared: Vec<String> = Vec::new();
    let operations = body.get("Operations").and_then(Value::as_array).into_iter().flatten();
    for operation in operations.filter(|o| o["method"].as_str().is_some_and(|m| m.eq_ignore_ascii_case("PUT"))) {
        for attribute in chosen(operation.get("data")) {
            if !cleared.contains(&attribute) {
                cleared.push(attribute);
            }
        }
    }
    cleared
}

/// A bulk request without the operations at `left_out`, with `bulkId:` references to the
/// ones that took effect (`recorded`) replaced by the ids they created; references to the
/// ones sent again stay, for the application to resolve.
fn without_bulk_operations(body: &mut Value, left_out: &[usize], recorded: Option<&Value>) {
    let created: HashMap<String, String> = recorded
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o["outcome"] == "ok")
        .filter_map(|o| {
            let bulk_id = o["bulkId"].as_str()?;
            let id = o["location"].as_str()?.trim_end_matches('/').rsplit('/').next()?;
            Some((bulk_id.to_owned(), id.to_owned()))
        })
        .collect();
    let Some(operations) = body
        .as_object_mut()
        .and_then(|members| scim_json::get_mut(members, "Operations"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let mut index = 0;
    operations.retain(|_| {
        let keep = !left_out.contains(&index);
        index += 1;
        keep
    });
    for operation in operations.iter_mut() {
        resolve_bulk_ids(operation, &created);
    }
}

/// Takes the members `ids` (lowercase) out of a member operation's value: `path: members`
/// with a value array or object, or a path-less value's `members`.
pub(super) fn without_members(operation: &mut Value, ids: &[String]) {
    let gone = |member: &Value| {
        member
            .get("value")
            .and_then(Value::as_str)
            .is_some_and(|id| ids.contains(&id.to_lowercase()))
    };
    let Some(members) = operation.as_object_mut() else {
        return;
    };
    let Some(value) = scim_json::get_mut(members, "value") else {
        return;
    };
    let list = match value {
        Value::Object(object) if object.contains_key("value") => {
            if gone(value) {
                *value = Value::Array(Vec::new());
            }
            return;
        }
        Value::Object(object) => scim_json::get_mut(object, "members"),
        other => Some(other),
    };
    if let Some(Value::Array(items)) = list {
        items.retain(|member| !gone(member));
    }
}

/// The request to send again: the recorded method, path and query, with `headers` and
/// `body`.
pub(super) fn replay_request(
    original: &Exchange,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let mut uri = original.begun.path.clone();
    if let Some(query) = &original.begun.query {
        uri.push('?');
        uri.push_str(query);
    }
    let method = http::Method::from_bytes(original.begun.method.as_bytes())
        .map_err(|_| format!("the recorded method {} is not valid", original.begun.method))?;
    let mut request = Request::builder()
        .method(method)
        .uri(&uri)
        .body(Full::new(body))
        .map_err(|error| format!("the recorded request to {uri} cannot be rebuilt: {error}"))?;
    *request.headers_mut() = headers;
    Ok(request)
}
