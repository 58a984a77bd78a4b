//! Response rules for what IdPs expect beyond the basics: 201 on create (R6), 409 on a
//! duplicate (R7), lean group responses (R9), no nulls (R10), filters the application could
//! not evaluate (R12), integer Retry-After (R14), and the capabilities advertised (R17).

use super::ChangeFn;
use crate::request::resource_type_of;
use crate::{PostFilter, Request, Response};
use scimtrail_scim::error::ERROR_SCHEMA;
use scimtrail_scim::message::LIST_RESPONSE_SCHEMA;
use scimtrail_scim::{json, Filter};
use serde_json::{json, Value};

fn is_create(request: &Request) -> bool {
    request.method.eq_ignore_ascii_case("POST")
        && request
            .path
            .rsplit('/')
            .find(|s| !s.is_empty())
            .is_some_and(|last| last == "Users" || last == "Groups")
}

// === R6 ===

pub(super) fn created_status(request: &Request, response: &mut Response, change: &mut ChangeFn<'_>) {
    let has_resource = response.body.as_ref().and_then(|b| b.get("id")).is_some();
    if is_create(request) && response.status == 200 && has_resource {
        change("status", Some(json!(200)), Some(json!(201)));
        response.status = 201;
    }
}

// === R7 ===

pub(super) fn uniqueness_conflict(request: &Request, response: &mut Response, change: &mut ChangeFn<'_>) {
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
        change("status", Some(json!(response.status)), Some(json!(409)));
        response.status = 409;
    }
    change("", response.body.clone(), Some(error.clone()));
    response.body = Some(error);
    response.has_body = true;
}

// === R9 ===

pub(super) fn lean_group_responses(request: &Request, response: &mut Response, change: &mut ChangeFn<'_>) {
    let is_group = resource_type_of(&request.path).is_some_and(|rt| rt.name == "Group");
    if !is_group {
        return;
    }
    let group_patch = request.method.eq_ignore_ascii_case("PATCH") && response.status == 200;
    if group_patch && response.has_body {
        change("status", Some(json!(200)), Some(json!(204)));
        change("", response.body.clone(), None);
        response.status = 204;
        response.body = None;
        response.has_body = false;
        return;
    }
    let excludes_members = request.query.as_deref().is_some_and(|q| {
        crate::query::decode(q).iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("excludedAttributes")
                && value.split(',').any(|a| a.trim().eq_ignore_ascii_case("members"))
        })
    });
    if !excludes_members {
        return;
    }
    let Some(body) = response.body.as_mut() else { return };
    let mut strip = |resource: &mut Value, pointer: String| {
        if let Some(object) = resource.as_object_mut() {
            if let Some(key) = json::find_key(object, "members").cloned() {
                if let Some(members) = object.remove(&key) {
                    change(&format!("{pointer}/{key}"), Some(members), None);
                }
            }
        }
    };
    match body.get_mut("Resources").and_then(Value::as_array_mut) {
        Some(resources) => {
            for (index, resource) in resources.iter_mut().enumerate() {
                strip(resource, format!("/Resources/{index}"));
            }
        }
        None => strip(body, String::new()),
    }
}

// === R10 ===

pub(super) fn no_nulls_in_resources(response: &mut Response, change: &mut ChangeFn<'_>) {
    let Some(body) = response.body.as_mut() else { return };
    let mut clean = |resource: &mut Value, pointer: String| {
        let Some(object) = resource.as_object_mut() else { return };
        let nulls: Vec<String> = object
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k.clone())
            .collect();
        for key in nulls {
            object.remove(&key);
            change(
                &format!("{pointer}/{}", crate::pointer_token(&key)),
                Some(Value::Null),
                None,
            );
        }
        for (key, extension) in object.iter_mut().filter(|(k, _)| k.starts_with("urn:")) {
            let Some(extension) = extension.as_object_mut() else {
                continue;
            };
            let here = format!("{pointer}/{}", crate::pointer_token(key));
            let nulls: Vec<String> = extension
                .iter()
                .filter(|(_, v)| v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            for name in nulls {
                extension.remove(&name);
                change(&format!("{here}/{name}"), Some(Value::Null), None);
            }
            if let Some(manager) = extension.get_mut("manager") {
                if let Value::String(id) = manager {
                    let object = json!({"value": id});
                    change(&format!("{here}/manager"), Some(manager.clone()), Some(object.clone()));
                    *manager = object;
                }
            }
        }
    };
    if body.get("Resources").is_some() {
        for (index, resource) in body
            .get_mut("Resources")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .enumerate()
        {
            clean(resource, format!("/Resources/{index}"));
        }
    } else if body.get("id").is_some() {
        clean(body, String::new());
    }
}

// === R12 ===

pub(super) fn evaluate_filter(
    request: &Request,
    post: &PostFilter,
    response: &mut Response,
    change: &mut ChangeFn<'_>,
) {
    let (Some(rt), Ok(filter)) = (resource_type_of(&request.path), Filter::parse(&post.filter)) else {
        return;
    };
    let Some(Value::Object(list)) = response.body.as_ref() else {
        return;
    };
    let Some(resources) = json::get(list, "Resources").and_then(Value::as_array) else {
        return;
    };
    let total = json::get(list, "totalResults").and_then(Value::as_u64).unwrap_or(0);
    let before = response.body.clone();
    let replacement = if total > resources.len() as u64 {
        // More than one page: evaluating over part of the list would answer wrongly.
        response.status = 400;
        json!({"schemas": [ERROR_SCHEMA], "status": "400", "scimType": "tooMany",
            "detail": format!("the application cannot evaluate the filter {:?}, and it holds {total} resources, more than the {} the proxy evaluates it over", post.filter, resources.len())})
    } else {
        let matching: Vec<Value> = resources.iter().filter(|r| filter.matches(r, rt)).cloned().collect();
        let total = matching.len();
        let skip = usize::try_from(post.start_index.saturating_sub(1)).unwrap_or(usize::MAX);
        let take = post
            .count
            .map_or(usize::MAX, |count| usize::try_from(count).unwrap_or(usize::MAX));
        let page: Vec<Value> = matching.into_iter().skip(skip).take(take).collect();
        json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": total, "startIndex": post.start_index,
            "itemsPerPage": page.len(), "Resources": page})
    };
    change("", before, Some(replacement.clone()));
    response.body = Some(replacement);
}

// === R14 ===

pub(super) fn integer_retry_after(response: &mut Response, change: &mut ChangeFn<'_>) {
    let Some(value) = response.retry_after.clone() else {
        return;
    };
    if value.trim().parse::<u64>().is_ok() {
        return;
    }
    // Neither seconds nor a date: Okta's own reading of such a value, five minutes.
    let seconds = crate::retry_after_seconds(&value, response.received_at_secs).unwrap_or(300);
    change(
        "header:retry-after",
        Some(json!(value)),
        Some(json!(seconds.to_string())),
    );
    response.retry_after = Some(seconds.to_string());
}

// === R17 ===

pub(super) fn advertise_capabilities(
    request: &Request,
    response: &mut Response,
    target: &crate::Target,
    change: &mut ChangeFn<'_>,
) {
    let is_config = request.method.eq_ignore_ascii_case("GET")
        && request.path.trim_end_matches('/').ends_with("/ServiceProviderConfig");
    if !is_config || response.status != 200 {
        return;
    }
    let Some(Value::Object(config)) = response.body.as_mut() else {
        return;
    };
    for (feature, supported) in [("patch", true), ("filter", true), ("bulk", target.bulk)] {
        let entry = config.entry(feature.to_owned()).or_insert_with(|| json!({}));
        let Some(entry) = entry.as_object_mut() else { continue };
        let before = entry.get("supported").cloned();
        if before != Some(Value::Bool(supported)) {
            entry.insert("supported".to_owned(), Value::Bool(supported));
            change(&format!("/{feature}/supported"), before, Some(Value::Bool(supported)));
        }
        if feature != "bulk" {
            continue;
        }
        // The limits the proxy enforces on a bulk request, whether it carries it out itself or
        // forwards it: within what the application advertises, when it serves `/Bulk`.
        let limits = [
            ("maxOperations", target.max_bulk_operations),
            ("maxPayloadSize", target.bulk_payload_limit()),
        ];
        for (name, ours) in limits {
            let before = entry.get(name).cloned();
            let theirs = before.as_ref().and_then(Value::as_u64).filter(|_| target.bulk);
            let advertised = theirs.map_or(ours as u64, |theirs| theirs.min(ours as u64));
            if before.as_ref().and_then(Value::as_u64) != Some(advertised) {
                entry.insert(name.to_owned(), json!(advertised));
                change(&format!("/bulk/{name}"), before, Some(json!(advertised)));
            }
        }
    }
}
