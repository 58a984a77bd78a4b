//! The value a resolved path designates: where it lives (the resource or an extension
//! object), read, written, taken, and the values a filter matches.

use super::{OpError, OpResult};
use crate::filter::Filter;
use crate::json;
use crate::resource::add_schema;
use crate::schema::{AttributeDef, Schema};
use crate::ScimType;
use serde_json::{Map, Value};

/// What a path designates once resolved.
pub(super) struct Target<'p> {
    pub(super) extension: Option<&'static Schema>,
    pub(super) attr: &'static AttributeDef,
    pub(super) sub: Option<&'static AttributeDef>,
    pub(super) filter: Option<&'p Filter>,
    pub(super) display: String,
}

pub(super) fn container<'r>(
    resource: &'r Map<String, Value>,
    extension: Option<&Schema>,
) -> Option<&'r Map<String, Value>> {
    match extension {
        None => Some(resource),
        Some(ext) => json::get(resource, ext.id)?.as_object(),
    }
}

pub(super) fn container_mut<'r>(
    resource: &'r mut Map<String, Value>,
    extension: Option<&Schema>,
) -> Option<&'r mut Map<String, Value>> {
    match extension {
        None => Some(resource),
        Some(ext) => {
            if json::get(resource, ext.id).is_none_or(|v| !v.is_object()) {
                json::set(resource, ext.id, Value::Object(Map::new()));
                add_schema(resource, ext.id);
            }
            json::get_mut(resource, ext.id)?.as_object_mut()
        }
    }
}

/// Writes (or, with `None`, removes) the attribute, creating or dropping its extension object.
pub(super) fn store(resource: &mut Map<String, Value>, target: &Target<'_>, value: Option<Value>) -> OpResult {
    if value.is_none() && container(resource, target.extension).is_none() {
        return Ok(());
    }
    let object = container_mut(resource, target.extension).ok_or_else(no_container)?;
    match value {
        Some(v) => json::set(object, target.attr.name, v),
        None => {
            json::remove(object, target.attr.name);
        }
    }
    prune_empty(resource, target);
    Ok(())
}

/// Drops a complex attribute or an extension object left without any value.
pub(super) fn prune_empty(resource: &mut Map<String, Value>, target: &Target<'_>) {
    if let Some(object) = container_mut(resource, target.extension) {
        if json::get(object, target.attr.name).is_some_and(|v| !json::is_assigned(v)) {
            json::remove(object, target.attr.name);
        }
    }
    if let Some(ext) = target.extension {
        if json::get(resource, ext.id).is_some_and(|v| !json::is_assigned(v)) {
            json::remove(resource, ext.id);
            if let Some(Value::Array(urns)) = json::get_mut(resource, "schemas") {
                urns.retain(|u| !u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(ext.id)));
            }
        }
    }
}

/// Moves the attribute's value out of the resource, leaving `null` in its place (so that
/// `store` writes it back where it was). The request works on a copy, so an error after
/// this loses nothing.
pub(super) fn take(resource: &mut Map<String, Value>, target: &Target<'_>) -> Option<Value> {
    let container = match target.extension {
        None => Some(resource),
        Some(ext) => json::get_mut(resource, ext.id).and_then(Value::as_object_mut),
    };
    container
        .and_then(|c| json::get_mut(c, target.attr.name))
        .map(std::mem::take)
}

/// The values of a multi-valued attribute, moved out of the resource (see [`take`]).
pub(super) fn take_elements(resource: &mut Map<String, Value>, target: &Target<'_>) -> Vec<Value> {
    match take(resource, target) {
        Some(Value::Array(items)) => items,
        Some(Value::Object(single)) => vec![Value::Object(single)],
        _ => Vec::new(),
    }
}

pub(super) fn matching(items: &[Value], attr: &'static AttributeDef, filter: &Filter) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter.matches_element(item, attr))
        .map(|(i, _)| i)
        .collect()
}

pub(super) fn no_match(target: &Target<'_>) -> OpError {
    OpError(
        ScimType::NoTarget,
        format!("\"{}\": the value filter matches no value", target.display),
    )
}

pub(super) fn no_container() -> OpError {
    OpError(
        ScimType::InvalidValue,
        "the attribute's container is not an object".to_owned(),
    )
}

pub(super) fn is_primary(item: &Value) -> bool {
    item.as_object().and_then(|o| json::get(o, "primary")) == Some(&Value::Bool(true))
}

pub(super) fn clear_primary(item: &mut Value) {
    if let Some(Value::Bool(primary)) = item.as_object_mut().and_then(|o| json::get_mut(o, "primary")) {
        *primary = false;
    }
}
