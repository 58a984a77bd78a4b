//! Values reshaped where they are written: string booleans (N2), null `$ref`s (N5), `manager`
//! (N6), JSON-encoded roles (N7), single values of multi-valued attributes (N13), member
//! `type` (N17), and one `primary` per attribute (N24).

use super::filter;
use super::written::{for_each_attribute, path_text, walk_resource, walk_sub_attributes, walk_values, Written};
use super::Working;
use crate::changes::Changes;
use crate::resource::pointer_token;
use scimtrail_scim::schema::{AttrType, AttributeDef, ResourceType, ENTERPRISE_USER_SCHEMA};
use scimtrail_scim::{json, AttrPath, PatchPath};
use serde_json::{json, Map, Value};

/// `true`/`false` for `"true"`/`"false"` in any case (surrounding spaces ignored).
pub(super) fn boolean_string(text: &str) -> Option<bool> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl Working {
    /// Visits the value of attribute `name` wherever the request writes it whole: the body's
    /// member, or the value of an operation whose path is `name`.
    fn each_written_attribute(&mut self, name: &str, mut visit: impl FnMut(&mut Value, &str, &mut Changes)) {
        self.each_written(|written, changes| match written {
            Written::Body(body) => {
                if let Some(key) = json::find_key(body, name).cloned() {
                    if let Some(value) = body.get_mut(&key) {
                        visit(value, &format!("/{key}"), changes);
                    }
                }
            }
            Written::Operation(operation, pointer) => {
                if path_text(operation).is_some_and(|p| p.eq_ignore_ascii_case(name)) {
                    if let Some(value) = json::get_mut(operation, "value") {
                        visit(value, &format!("{pointer}/value"), changes);
                    }
                }
            }
        });
    }

    // === N2 ===

    pub(super) fn coerce_boolean_strings(&mut self) {
        let Some(rt) = self.resource_type else { return };
        self.each_written(|written, changes| match written {
            Written::Body(body) => walk_resource(body, rt, "", &mut |def, value, pointer| {
                coerce_boolean(def, value, pointer, changes)
            }),
            Written::Operation(operation, base) => coerce_in_operation(operation, rt, &base, changes),
        });
    }

    // === N5 ===

    pub(super) fn drop_null_refs(&mut self) {
        if let Some(body) = self.request.body.as_mut() {
            drop_null_refs_in(body, "", &mut self.changes);
        }
    }

    // === N6 ===

    pub(super) fn normalize_manager(&mut self) {
        let Some(rt) = self.resource_type.filter(|rt| rt.name == "User") else {
            return;
        };
        self.each_written(|written, changes| match written {
            Written::Body(body) => {
                if let Some(extension) = json::get_mut(body, ENTERPRISE_USER_SCHEMA).and_then(Value::as_object_mut) {
                    if let Some(manager) = json::get_mut(extension, "manager") {
                        let pointer = format!("/{}/manager", pointer_token(ENTERPRISE_USER_SCHEMA));
                        manager_object(manager, &pointer, changes);
                    }
                }
            }
            Written::Operation(operation, pointer) => manager_in_operation(operation, rt, &pointer, changes),
        });
    }

    // === N7 ===

    pub(super) fn parse_json_roles(&mut self) {
        self.each_written_attribute("roles", |roles, pointer, changes| {
            for (index, role) in roles.as_array_mut().into_iter().flatten().enumerate() {
                let Some(text) = role.get("value").and_then(Value::as_str) else {
                    continue;
                };
                if !text.trim_start().starts_with('{') {
                    continue;
                }
                let Ok(Value::Object(mut decoded)) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                // Entra's object names the role's display text `displayName`; SCIM's is `display`.
                if let Some(display) = decoded.remove("displayName") {
                    decoded.entry("display").or_insert(display);
                }
                decoded.remove("id");
                let replacement = Value::Object(decoded);
                changes.record(
                    format!("{pointer}/{index}"),
                    Some(role.clone()),
                    Some(replacement.clone()),
                );
                *role = replacement;
            }
        });
    }

    // === N13 ===

    pub(super) fn wrap_single_values(&mut self) {
        let Some(rt) = self.resource_type else { return };
        self.each_written(|written, changes| {
            let Written::Body(body) = written else { return };
            for_each_attribute(body, rt, "", &mut |def, value, pointer| {
                if def.multi_valued && value.is_object() {
                    let before = value.clone();
                    *value = Value::Array(vec![before.clone()]);
                    changes.record(pointer, Some(before), Some(value.clone()));
                }
                if def.name == "manager" {
                    if let Some(manager) = value.as_object_mut() {
                        if let (Some(id), None) = (json::remove(manager, "managerId"), json::get(manager, "value")) {
                            changes.record(format!("{pointer}/managerId"), Some(id.clone()), None);
                            changes.record(format!("{pointer}/value"), None, Some(id.clone()));
                            manager.insert("value".to_owned(), id);
                        }
                    }
                }
            });
        });
    }

    // === N17 ===

    pub(super) fn add_member_type(&mut self) {
        if self.resource_type.is_none_or(|rt| rt.name != "Group") {
            return;
        }
        self.each_written_attribute("members", |members, pointer, changes| {
            for (index, member) in members.as_array_mut().into_iter().flatten().enumerate() {
                if let Some(member) = member.as_object_mut() {
                    if json::get(member, "type").is_none() {
                        member.insert("type".to_owned(), json!("User"));
                        changes.record(format!("{pointer}/{index}/type"), None, Some(json!("User")));
                    }
                }
            }
        });
    }

    // === N24 ===

    pub(super) fn single_primary(&mut self) {
        let Some(rt) = self.resource_type else { return };
        self.each_written(|written, changes| match written {
            Written::Body(body) => for_each_attribute(body, rt, "", &mut |def, value, pointer| {
                one_primary(def, value, pointer, changes)
            }),
            Written::Operation(operation, base) => single_primary_in_operation(operation, rt, &base, changes),
        });
    }
}

/// N2 on one value: a string boolean of a boolean attribute as a JSON boolean.
fn coerce_boolean(def: &AttributeDef, value: &mut Value, pointer: &str, changes: &mut Changes) {
    if def.kind != AttrType::Boolean {
        return;
    }
    if let Some(flag) = value.as_str().and_then(boolean_string) {
        changes.record(pointer, Some(value.clone()), Some(Value::Bool(flag)));
        *value = Value::Bool(flag);
    }
}

/// N2 in one operation: a path-less value as a resource; a path's filter comparisons; a
/// value at a path as values of the attribute (or sub-attribute) it names.
fn coerce_in_operation(operation: &mut Map<String, Value>, rt: &ResourceType, base: &str, changes: &mut Changes) {
    let path_text = path_text(operation).map(str::to_owned);
    let value_key = json::find_key(operation, "value").cloned();
    let Some(text) = path_text else {
        if let Some(Value::Object(value)) = value_key.as_ref().and_then(|k| operation.get_mut(k)) {
            walk_resource(value, rt, &format!("{base}/value"), &mut |def, value, pointer| {
                coerce_boolean(def, value, pointer, changes)
            });
        }
        return;
    };
    let Ok(mut path) = PatchPath::parse(&text) else {
        return;
    };
    if let Some(path_filter) = path.filter.as_mut() {
        let parent = AttrPath {
            sub: None,
            ..path.attr.clone()
        };
        if filter::coerce_boolean_literals(path_filter, rt, Some(&parent)) {
            let printed = path.to_string();
            if let Some(key) = json::find_key(operation, "path").cloned() {
                changes.record(format!("{base}/{key}"), Some(json!(text)), Some(json!(printed)));
                operation.insert(key, json!(printed));
            }
        }
    }
    let Some(resolved) = rt.resolve(&path.attr) else {
        return;
    };
    let Some(value) = value_key.as_ref().and_then(|k| operation.get_mut(k)) else {
        return;
    };
    let pointer = format!("{base}/value");
    let visit =
        &mut |def: &AttributeDef, value: &mut Value, pointer: &str| coerce_boolean(def, value, pointer, changes);
    match resolved.sub {
        Some(sub) => walk_values(value, sub, &pointer, visit),
        // `emails[type eq "work"]` with a value: one element's sub-attributes.
        None if path.filter.is_some() && resolved.attr.multi_valued => {
            walk_sub_attributes(value, resolved.attr, &pointer, visit)
        }
        None => walk_values(value, resolved.attr, &pointer, visit),
    }
}

/// N6 in one operation: the legacy path `manager` named in the enterprise extension, and a
/// whole manager's value as an object.
fn manager_in_operation(operation: &mut Map<String, Value>, rt: &ResourceType, pointer: &str, changes: &mut Changes) {
    let Some(path_key) = json::find_key(operation, "path").cloned() else {
        return;
    };
    let Some(path_text) = operation.get(&path_key).and_then(Value::as_str).map(str::to_owned) else {
        return;
    };
    let Ok(mut path) = PatchPath::parse(&path_text) else {
        return;
    };
    if path.filter.is_some() || !path.attr.is("manager") {
        return;
    }
    if path.attr.urn.is_none() && rt.resolve(&path.attr).is_none() {
        path.attr.urn = Some(ENTERPRISE_USER_SCHEMA.to_owned());
        let printed = path.to_string();
        changes.record(
            format!("{pointer}/{path_key}"),
            Some(json!(path_text)),
            Some(json!(printed)),
        );
        operation.insert(path_key, json!(printed));
    }
    if path.attr.sub.is_none() {
        if let Some(value) = json::get_mut(operation, "value") {
            manager_object(value, &format!("{pointer}/value"), changes);
        }
    }
}

/// N24 in one operation: a path-less value as a resource; the value of a whole attribute
/// (no filter, no sub-attribute) as that attribute's values.
fn single_primary_in_operation(
    operation: &mut Map<String, Value>,
    rt: &ResourceType,
    base: &str,
    changes: &mut Changes,
) {
    let path = path_text(operation).and_then(|p| PatchPath::parse(p).ok());
    let Some(value) = json::get_mut(operation, "value") else {
        return;
    };
    let pointer = format!("{base}/value");
    match path {
        None => {
            if let Some(value) = value.as_object_mut() {
                for_each_attribute(value, rt, &pointer, &mut |def, value, pointer| {
                    one_primary(def, value, pointer, changes)
                });
            }
        }
        Some(path) if path.filter.is_none() => {
            if let Some(resolved) = rt.resolve(&path.attr).filter(|r| r.sub.is_none()) {
                one_primary(resolved.attr, value, &pointer, changes);
            }
        }
        Some(_) => {}
    }
}

/// A manager given as a bare id or a one-element array becomes `{"value": id}`.
fn manager_object(manager: &mut Value, pointer: &str, changes: &mut Changes) {
    let replacement = match manager {
        Value::String(id) => Some(json!({"value": id})),
        Value::Array(elements) if elements.len() == 1 => match &elements[0] {
            Value::String(id) => Some(json!({"value": id})),
            Value::Object(object) => Some(Value::Object(object.clone())),
            _ => None,
        },
        _ => None,
    };
    if let Some(replacement) = replacement {
        changes.record(pointer, Some(manager.clone()), Some(replacement.clone()));
        *manager = replacement;
    }
}

/// N5: every `"$ref": null`, at any depth.
fn drop_null_refs_in(value: &mut Value, pointer: &str, changes: &mut Changes) {
    match value {
        Value::Object(object) => {
            if object.get("$ref") == Some(&Value::Null) {
                object.remove("$ref");
                changes.record(format!("{pointer}/$ref"), Some(Value::Null), None);
            }
            for (key, inner) in object.iter_mut() {
                drop_null_refs_in(inner, &format!("{pointer}/{}", pointer_token(key)), changes);
            }
        }
        Value::Array(elements) => {
            for (index, inner) in elements.iter_mut().enumerate() {
                drop_null_refs_in(inner, &format!("{pointer}/{index}"), changes);
            }
        }
        _ => {}
    }
}

/// N24 on the values of one multi-valued attribute with `primary`: every `primary: true`
/// after the first made `false`.
fn one_primary(def: &AttributeDef, value: &mut Value, pointer: &str, changes: &mut Changes) {
    if !def.multi_valued || def.sub_attribute("primary").is_none() {
        return;
    }
    let mut seen = false;
    for (index, element) in value.as_array_mut().into_iter().flatten().enumerate() {
        let Some(element) = element.as_object_mut() else {
            continue;
        };
        let Some(key) = json::find_key(element, "primary").cloned() else {
            continue;
        };
        if element.get(&key) == Some(&Value::Bool(true)) {
            if seen {
                element.insert(key.clone(), Value::Bool(false));
                changes.record(
                    format!("{pointer}/{index}/{key}"),
                    Some(json!(true)),
                    Some(json!(false)),
                );
            }
            seen = true;
        }
    }
}
