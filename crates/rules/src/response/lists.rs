//! Lists as the IdP reads them: zero hits as an empty ListResponse (R1), paging numbers as
//! integers (R3), pages merged into one (R4), and a filter the application could not
//! evaluate, evaluated over its list (R12).

use crate::changes::Changes;
use crate::request::query;
use crate::resource::resource_type_of;
use crate::{PostFilter, Request, Response};
use scimtrail_scim::error::ERROR_SCHEMA;
use scimtrail_scim::message::LIST_RESPONSE_SCHEMA;
use scimtrail_scim::{json, Filter};
use serde_json::{json, Value};

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

// === R1 ===

pub(super) fn zero_hits_as_empty_list(request: &Request, response: &mut Response, changes: &mut Changes) {
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
        changes.record("status", Some(json!(response.status)), Some(json!(200)));
        response.status = 200;
    }
    changes.record("", response.body.clone(), Some(list.clone()));
    response.body = Some(list);
    response.has_body = true;
}

// === R3 ===

pub(super) fn integer_paging(response: &mut Response, changes: &mut Changes) {
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
        changes.record(format!("/{key}"), before, Some(after.clone()));
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

// === R12 ===

pub(super) fn evaluate_filter(request: &Request, post: &PostFilter, response: &mut Response, changes: &mut Changes) {
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
    changes.record("", before, Some(replacement.clone()));
    response.body = Some(replacement);
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
