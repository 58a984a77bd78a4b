//! The resources returned: `schemas` on each, and an error's `status` a string (R2); lean
//! group responses (R9); no `null` values and `manager` an object (R10).

use crate::changes::Changes;
use crate::request::query;
use crate::resource::{drop_null_members, pointer_token, resource_type_of};
use crate::{Request, Response};
use scimtrail_scim::error::ERROR_SCHEMA;
use scimtrail_scim::json;
use scimtrail_scim::message::LIST_RESPONSE_SCHEMA;
use serde_json::{json, Value};

// === R2 ===

pub(super) fn ensure_schemas(request: &Request, response: &mut Response, changes: &mut Changes) {
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
        changes.record("/schemas", None, Some(json!([wanted])));
    }
    if is_error {
        if let Some(key) = json::find_key(body, "status").cloned() {
            if let Some(number) = body.get(&key).and_then(Value::as_u64) {
                let text = json!(number.to_string());
                changes.record(format!("/{key}"), Some(json!(number)), Some(text.clone()));
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
                        changes.record(format!("/Resources/{index}/schemas"), None, Some(json!([core])));
                    }
                }
            }
        }
    }
}

// === R9 ===

pub(super) fn lean_group_responses(request: &Request, response: &mut Response, changes: &mut Changes) {
    let is_group = resource_type_of(&request.path).is_some_and(|rt| rt.name == "Group");
    if !is_group {
        return;
    }
    let group_patch = request.method.eq_ignore_ascii_case("PATCH") && response.status == 200;
    if group_patch && response.has_body {
        changes.record("status", Some(json!(200)), Some(json!(204)));
        changes.record("", response.body.clone(), None);
        response.status = 204;
        response.body = None;
        response.has_body = false;
        return;
    }
    let excludes_members = request.query.as_deref().is_some_and(|q| {
        query::decode(q).iter().any(|(name, value)| {
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
                    changes.record(format!("{pointer}/{key}"), Some(members), None);
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

pub(super) fn no_nulls_in_resources(response: &mut Response, changes: &mut Changes) {
    let Some(body) = response.body.as_mut() else { return };
    let mut clean = |resource: &mut Value, pointer: String| {
        let Some(object) = resource.as_object_mut() else { return };
        drop_null_members(object, changes, |key| format!("{pointer}/{}", pointer_token(key)));
        for (key, extension) in object.iter_mut().filter(|(k, _)| k.starts_with("urn:")) {
            let Some(extension) = extension.as_object_mut() else {
                continue;
            };
            let here = format!("{pointer}/{}", pointer_token(key));
            // Unlike the top level's, these names are not escaped in the pointer.
            drop_null_members(extension, changes, |name| format!("{here}/{name}"));
            if let Some(manager) = extension.get_mut("manager") {
                if let Value::String(id) = manager {
                    let object = json!({"value": id});
                    changes.record(format!("{here}/manager"), Some(manager.clone()), Some(object.clone()));
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
