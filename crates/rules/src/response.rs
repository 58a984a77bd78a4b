//! Response rules (R…): what the IdP receives.

use crate::action::Action;
use crate::request::resource_type_of;

mod more;
use crate::{query, Change, Normalized, Profile, Request, Response, Side, Target};
use scimtrail_scim::error::ERROR_SCHEMA;
use scimtrail_scim::json;
use scimtrail_scim::message::LIST_RESPONSE_SCHEMA;
use serde_json::{json, Value};

/// Applies the profile's response rules in order. `request` is the request as forwarded;
/// `target` the application that answered.
pub fn normalize_response(
    request: &Request,
    response: &Response,
    profile: &Profile,
    target: &Target,
) -> Normalized<Response> {
    let mut working = response.clone();
    let mut changes = Vec::new();
    // R12: the filter the application could not evaluate, evaluated here.
    if let Some(post) = &request.post_filter {
        let rule = profile
            .rules
            .iter()
            .find(|rule| rule.action == Action::EvaluateFilterInProxy)
            .map_or("R12", |rule| rule.id.as_str());
        let mut change = |pointer: &str, before: Option<Value>, after: Option<Value>| {
            changes.push(Change {
                rule: rule.to_owned(),
                side: Side::Response,
                pointer: pointer.to_owned(),
                before,
                after,
            });
        };
        more::evaluate_filter(request, post, &mut working, &mut change);
    }
    for rule in profile.rules.iter().filter(|rule| rule.action.on_response()) {
        let mut change = |pointer: &str, before: Option<Value>, after: Option<Value>| {
            changes.push(Change {
                rule: rule.id.clone(),
                side: Side::Response,
                pointer: pointer.to_owned(),
                before,
                after,
            });
        };
        match &rule.action {
            Action::ZeroHitsAsEmptyList => zero_hits_as_empty_list(request, &mut working, &mut change),
            Action::EnsureSchemas => ensure_schemas(request, &mut working, &mut change),
            Action::IntegerPaging => integer_paging(&mut working, &mut change),
            Action::ResponseContentType { content_type }
                if working.has_body && working.content_type.as_deref() != Some(content_type.as_str()) =>
            {
                change(
                    "header:content-type",
                    working.content_type.clone().map(Value::String),
                    Some(json!(content_type)),
                );
                working.content_type = Some(content_type.clone());
            }
            Action::CreatedStatus => more::created_status(request, &mut working, &mut change),
            Action::UniquenessConflict => more::uniqueness_conflict(request, &mut working, &mut change),
            Action::LeanGroupResponses => more::lean_group_responses(request, &mut working, &mut change),
            Action::NoNullsInResources => more::no_nulls_in_resources(&mut working, &mut change),
            Action::IntegerRetryAfter => more::integer_retry_after(&mut working, &mut change),
            Action::AdvertiseCapabilities => more::advertise_capabilities(request, &mut working, target, &mut change),
            _ => {}
        }
    }
    Normalized {
        value: working,
        changes,
    }
}

fn is_filtered_search(request: &Request) -> bool {
    let filtered_get = request.method.eq_ignore_ascii_case("GET")
        && request.query.as_deref().is_some_and(|q| {
            query::decode(q)
                .iter()
                .any(|(name, value)| name.eq_ignore_ascii_case("filter") && !value.is_empty())
        });
    let search = request.method.eq_ignore_ascii_case("POST") && request.path.ends_with("/.search");
    let collection = request
        .path
        .rsplit('/')
        .find(|s| !s.is_empty())
        .is_some_and(|last| last == "Users" || last == "Groups" || last == ".search");
    (filtered_get || search) && collection
}

pub(crate) type ChangeFn<'a> = dyn FnMut(&str, Option<Value>, Option<Value>) + 'a;

fn zero_hits_as_empty_list(request: &Request, response: &mut Response, change: &mut ChangeFn<'_>) {
    if !is_filtered_search(request) {
        return;
    }
    let empty = match (&response.body, response.status) {
        (_, 404) => true,
        (Some(Value::Array(items)), 200) => items.is_empty(),
        (Some(Value::Null), 200) => true,
        (None, 200 | 204) => true,
        _ => false,
    };
    if !empty {
        return;
    }
    let list = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    });
    if response.status != 200 {
        change("status", Some(json!(response.status)), Some(json!(200)));
        response.status = 200;
    }
    change("", response.body.clone(), Some(list.clone()));
    response.body = Some(list);
    response.has_body = true;
}

fn ensure_schemas(request: &Request, response: &mut Response, change: &mut ChangeFn<'_>) {
    let core = resource_type_of(&request.path).map(|rt| rt.schema.id);
    let status = response.status;
    let Some(Value::Object(body)) = response.body.as_mut() else {
        return;
    };
    let is_list = json::get(body, "Resources").is_some() || json::get(body, "totalResults").is_some();
    let is_error = status >= 400;
    let wanted = if is_list {
        Some(LIST_RESPONSE_SCHEMA)
    } else if is_error {
        Some(ERROR_SCHEMA)
    } else if json::get(body, "id").is_some() {
        core
    } else {
        None
    };
    if let (Some(wanted), None) = (wanted, json::get(body, "schemas")) {
        body.insert("schemas".to_owned(), json!([wanted]));
        change("/schemas", None, Some(json!([wanted])));
    }
    if is_error {
        if let Some(key) = json::find_key(body, "status").cloned() {
            if let Some(number) = body.get(&key).and_then(Value::as_u64) {
                let text = json!(number.to_string());
                change(&format!("/{key}"), Some(json!(number)), Some(text.clone()));
                body.insert(key, text);
            }
        }
    }
    if let (true, Some(core)) = (is_list, core) {
        if let Some(resources) = json::get_mut(body, "Resources").and_then(Value::as_array_mut) {
            for (index, resource) in resources.iter_mut().enumerate() {
                if let Some(resource) = resource.as_object_mut() {
                    if json::get(resource, "schemas").is_none() {
                        resource.insert("schemas".to_owned(), json!([core]));
                        change(&format!("/Resources/{index}/schemas"), None, Some(json!([core])));
                    }
                }
            }
        }
    }
}

fn integer_paging(response: &mut Response, change: &mut ChangeFn<'_>) {
    let Some(Value::Object(body)) = response.body.as_mut() else {
        return;
    };
    let Some(count) = json::get(body, "Resources").and_then(Value::as_array).map(Vec::len) else {
        return;
    };
    for (name, default) in [("totalResults", count), ("startIndex", 1), ("itemsPerPage", count)] {
        let key = json::find_key(body, name).cloned().unwrap_or_else(|| name.to_owned());
        let before = body.get(&key).cloned();
        let after = match &before {
            Some(Value::Number(n)) if n.is_u64() => continue,
            Some(Value::String(text)) => text.trim().parse::<u64>().map_or(json!(default), |n| json!(n)),
            Some(Value::Number(n)) => n.as_f64().map_or(json!(default), |f| json!(f.max(0.0).round() as u64)),
            _ => json!(default),
        };
        change(&format!("/{key}"), before, Some(after.clone()));
        body.insert(key, after);
    }
}

/// R4: pages of one list merged into one ListResponse: the first page's totals, every page's
/// resources in order. Pages that are not lists are skipped.
pub fn merge_pages(first: &Value, rest: &[Value]) -> Value {
    let mut merged = first.clone();
    let mut resources: Vec<Value> = first
        .get("Resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for page in rest {
        resources.extend(
            page.get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(object) = merged.as_object_mut() {
        object.insert("itemsPerPage".to_owned(), json!(resources.len()));
        object.insert("Resources".to_owned(), Value::Array(resources));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_pages_merge_in_order_with_the_first_page_totals() {
        let first = json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 5, "startIndex": 1, "itemsPerPage": 2,
            "Resources": [{"id": "1"}, {"id": "2"}]});
        let second = json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 5, "startIndex": 3, "itemsPerPage": 2,
            "Resources": [{"id": "3"}, {"id": "4"}]});
        let merged = merge_pages(&first, &[second, json!("not a list")]);
        assert_eq!(merged["totalResults"], 5);
        assert_eq!(merged["startIndex"], 1);
        assert_eq!(merged["itemsPerPage"], 4);
        assert_eq!(
            merged["Resources"],
            json!([{"id": "1"}, {"id": "2"}, {"id": "3"}, {"id": "4"}])
        );
    }
}
