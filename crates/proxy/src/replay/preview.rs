//! The dry run's preview: what a replay would send after the current rules, its diff from
//! what was sent before, and for PUT and PATCH the attribute diff against the resource as the
//! application has it now.

use super::check::Target;
use super::rebuild::Rebuilt;
use crate::exchange::rules_request;
use crate::pacing::Patience;
use crate::Proxy;
use scimtrail_scim::patch::PatchRequest;
use scimtrail_scim::ResourceType;
use scimtrail_store::Exchange;
use serde_json::{json, Value};

impl Proxy {
    /// Dry run: what would be sent after the current rules, its diff from what was sent
    /// before, and for PUT and PATCH the attribute diff against the resource now (`current`).
    pub(super) async fn preview(
        &self,
        target: &Target<'_>,
        original: &Exchange,
        rebuilt: Rebuilt,
        current: Option<&Value>,
        patience: &mut Patience,
    ) -> Value {
        let (route, profile) = (target.route, &*target.profile);
        let resource_type = original
            .begun
            .resource_type
            .as_deref()
            .and_then(|rt| ResourceType::by_endpoint(&format!("/{rt}")));
        let query = original.begun.query.as_deref();
        let headers = &rebuilt.headers;
        let received = rules_request(&original.begun.method, &rebuilt.rest, query, headers, rebuilt.body);
        let resource = original
            .begun
            .resource_type
            .as_deref()
            .zip(original.begun.resource_id.as_deref());
        let normalized = match self
            .apply_rules(route, profile, &received, headers, resource, patience)
            .await
        {
            Ok((_, normalized)) => normalized,
            Err(refused) => {
                return json!({
                    "refused": {"rule": "pacing", "status": 429, "detail": refused.detail}
                })
            }
        };
        let normalized = match normalized {
            Ok(normalized) => normalized,
            Err(refusal) => {
                return json!({
                    "refused": {"rule": refusal.rule, "status": refusal.error.status, "detail": refusal.error.detail}
                })
            }
        };
        let to_send = normalized.value;
        let describe = |request: &scimtrail_rules::Request| {
            let mut uri = format!("{}{}", route.upstream.to_string().trim_end_matches('/'), request.path);
            if let Some(query) = &request.query {
                uri.push('?');
                uri.push_str(query);
            }
            json!({"method": request.method, "url": uri, "body": request.body})
        };
        let sent_before: Option<Value> = original
            .forwarded_body()
            .or(original.begun.request_body.as_deref())
            .and_then(|b| serde_json::from_str(b).ok());
        let mut from_sent = Vec::new();
        diff(
            "",
            sent_before.as_ref().unwrap_or(&Value::Null),
            to_send.body.as_ref().unwrap_or(&Value::Null),
            &mut from_sent,
        );
        let mut preview = json!({
            "send": std::iter::once(&to_send).chain(&to_send.then).map(describe).collect::<Vec<_>>(),
            "rules": normalized.changes.iter().map(|c| c.rule.clone()).collect::<Vec<_>>(),
            "rules_version": profile.version(),
            "diff_from_sent": from_sent,
        });
        let current = current.map(|resource| {
            let mut resource = resource.clone();
            route.redaction.redact(&mut resource);
            resource
        });
        if let (Some(current), Some(rt)) = (current.as_ref(), resource_type) {
            let after = match to_send.method.as_str() {
                "PATCH" => {
                    std::iter::once(&to_send)
                        .chain(&to_send.then)
                        .try_fold(current.clone(), |mut resource, part| {
                            let body = part.body.clone().unwrap_or(Value::Null);
                            PatchRequest::from_json(&body)
                                .and_then(|patch| patch.apply(&mut resource, rt))
                                .map(|()| resource)
                                .map_err(|error| error.to_scim_error().detail)
                        })
                }
                "PUT" => Ok(put_result(current, to_send.body.as_ref())),
                _ => Err(String::new()),
            };
            match after {
                Ok(after) => {
                    let mut changes = Vec::new();
                    diff("", &without_meta(current), &without_meta(&after), &mut changes);
                    preview["diff_from_current"] = Value::Array(changes);
                }
                Err(detail) if !detail.is_empty() => {
                    preview["diff_from_current"] =
                        json!({"error": format!("would not apply to the resource as it is now: {detail}")});
                }
                Err(_) => {}
            }
        }
        preview
    }
}

/// A resource after a PUT of `body`: the PUT's attributes, with what the application owns
/// (`id`, `meta`, read-only `groups`) kept.
fn put_result(current: &Value, body: Option<&Value>) -> Value {
    let mut after = body.cloned().unwrap_or_else(|| json!({}));
    if let (Some(after), Some(current)) = (after.as_object_mut(), current.as_object()) {
        for owned in ["id", "meta", "groups"] {
            if let Some(value) = current.get(owned) {
                after.insert(owned.to_owned(), value.clone());
            }
        }
    }
    after
}

fn without_meta(resource: &Value) -> Value {
    let mut resource = resource.clone();
    if let Some(members) = resource.as_object_mut() {
        members.remove("meta");
    }
    resource
}

/// The differences from `before` to `after`, as JSON pointers with both values; objects are
/// compared member by member, anything else whole.
pub(super) fn diff(at: &str, before: &Value, after: &Value, out: &mut Vec<Value>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut names: Vec<&String> = b.keys().chain(a.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let pointer = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
                diff(
                    &pointer,
                    b.get(name).unwrap_or(&Value::Null),
                    a.get(name).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        // Multi-valued attributes keyed by `value` (members, emails…): element by element, so
        // that one member more is one line, not the whole list twice.
        (Value::Array(b), Value::Array(a)) if keyed_by_value(b) && keyed_by_value(a) && before != after => {
            let key = |v: &Value| v["value"].as_str().map(str::to_owned);
            for gone in b.iter().filter(|x| !a.iter().any(|y| key(y) == key(x))) {
                let pointer = format!("{at}[value eq {}]", gone["value"]);
                out.push(json!({"pointer": pointer, "before": gone, "after": null}));
            }
            for new in a.iter().filter(|y| !b.iter().any(|x| key(x) == key(y))) {
                let pointer = format!("{at}[value eq {}]", new["value"]);
                out.push(json!({"pointer": pointer, "before": null, "after": new}));
            }
        }
        _ if before != after => out.push(json!({"pointer": at, "before": before, "after": after})),
        _ => {}
    }
}

fn keyed_by_value(items: &[Value]) -> bool {
    items.iter().all(|item| item.get("value").is_some_and(Value::is_string))
}
