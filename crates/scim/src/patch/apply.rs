//! One operation applied to a working copy of the resource: its path resolved to a target,
//! or, without a path, each member of its value as an operation of its own.

use super::target::{
    clear_primary, container, container_mut, is_primary, matching, no_container, no_match, prune_empty, store, take,
    take_elements, Target,
};
use super::{OpError, OpResult, PatchOpKind, PatchOperation};
use crate::filter::Filter;
use crate::json;
use crate::path::PatchPath;
use crate::resource::{check_single, check_value};
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceType, Schema};
use crate::ScimType;
use serde_json::{Map, Value};

pub(super) fn apply_operation(
    resource: &mut Map<String, Value>,
    rt: &ResourceType,
    operation: &PatchOperation,
) -> OpResult {
    let value = operation.value.as_ref();
    let Some(path) = &operation.path else {
        // Without a path the value is a partial resource: each member is an operation on it.
        let Some(Value::Object(members)) = value else {
            return Ok(());
        };
        return apply_members(resource, rt, operation.op, members);
    };
    if let Some(ext) = whole_extension(path, rt) {
        return apply_extension(resource, ext, operation.op, value);
    }
    let resolved = rt.resolve(&path.attr).ok_or_else(|| {
        OpError(
            ScimType::InvalidPath,
            format!("\"{path}\" is not an attribute of {}", rt.name),
        )
    })?;
    let target = Target {
        extension: resolved.extension,
        attr: resolved.attr,
        sub: resolved.sub,
        filter: path.filter.as_ref(),
        display: path.to_string(),
    };
    if target.filter.is_some() && !(target.attr.kind == AttrType::Complex && target.attr.multi_valued) {
        return Err(OpError(
            ScimType::InvalidPath,
            format!("\"{path}\": a value filter selects values of a multi-valued complex attribute"),
        ));
    }
    if let Some(filter) = target.filter {
        filter
            .check_element(target.attr)
            .map_err(|e| OpError(ScimType::InvalidPath, format!("\"{path}\": {}", e.detail)))?;
    }
    apply_to_target(resource, operation.op, &target, value)
}

/// `urn:…:enterprise:2.0:User` as a path: the whole extension object.
fn whole_extension(path: &PatchPath, rt: &ResourceType) -> Option<&'static Schema> {
    let urn = path.attr.urn.as_ref()?;
    if path.attr.sub.is_some() || path.filter.is_some() {
        return None;
    }
    rt.extension(&format!("{urn}:{}", path.attr.name)).map(|e| e.schema)
}

fn apply_members(
    resource: &mut Map<String, Value>,
    rt: &ResourceType,
    op: PatchOpKind,
    members: &Map<String, Value>,
) -> OpResult {
    for (key, value) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            apply_extension(resource, ext.schema, op, Some(value))?;
            continue;
        }
        let Some(attr) = rt.top_attribute(key) else {
            let hint = if key.contains('.') || key.contains(':') {
                "; a path-less value is a partial resource: nest sub-attributes in objects and extension attributes under their schema URN (dotted and URN-qualified keys are paths, which go in \"path\")"
            } else {
                ""
            };
            return Err(OpError(
                ScimType::InvalidValue,
                format!(
                    "\"value\" has \"{key}\", which is not an attribute of {}{hint}",
                    rt.name
                ),
            ));
        };
        let target = Target {
            extension: None,
            attr,
            sub: None,
            filter: None,
            display: attr.name.to_owned(),
        };
        apply_to_target(resource, op, &target, Some(value))?;
    }
    Ok(())
}

fn apply_extension(
    resource: &mut Map<String, Value>,
    ext: &'static Schema,
    op: PatchOpKind,
    value: Option<&Value>,
) -> OpResult {
    match op {
        PatchOpKind::Remove => {
            json::remove(resource, ext.id);
            if let Some(Value::Array(urns)) = json::get_mut(resource, "schemas") {
                urns.retain(|u| !u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(ext.id)));
            }
            Ok(())
        }
        PatchOpKind::Add | PatchOpKind::Replace => {
            let Some(Value::Object(members)) = value else {
                return Err(OpError(
                    ScimType::InvalidValue,
                    format!("the value for \"{}\" must be an object of its attributes", ext.id),
                ));
            };
            for (key, member) in members {
                if key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let attr = ext.attribute(key).ok_or_else(|| {
                    OpError(
                        ScimType::InvalidValue,
                        format!("\"{key}\" is not an attribute of {}", ext.id),
                    )
                })?;
                let target = Target {
                    extension: Some(ext),
                    attr,
                    sub: None,
                    filter: None,
                    display: format!("{}:{}", ext.id, attr.name),
                };
                apply_to_target(resource, op, &target, Some(member))?;
            }
            Ok(())
        }
    }
}

fn apply_to_target(
    resource: &mut Map<String, Value>,
    op: PatchOpKind,
    target: &Target<'_>,
    value: Option<&Value>,
) -> OpResult {
    let leaf = target.sub.unwrap_or(target.attr);
    let current = container(resource, target.extension).and_then(|c| json::get(c, target.attr.name));
    if target.attr.mutability == Mutability::ReadOnly || leaf.mutability == Mutability::ReadOnly {
        // Naming a readOnly attribute with its current value modifies nothing.
        if op != PatchOpKind::Remove && target.sub.is_none() && target.filter.is_none() && value == current {
            return Ok(());
        }
        return Err(OpError(
            ScimType::Mutability,
            format!("\"{}\" is readOnly and cannot be modified", target.display),
        ));
    }
    if op == PatchOpKind::Remove {
        let has_value = current.is_some();
        return remove(resource, target, has_value);
    }
    let Some(value) = value else { return Ok(()) };
    if leaf.mutability == Mutability::Immutable && target.filter.is_none() && !target.attr.multi_valued {
        let existing = if target.sub.is_some() {
            current.and_then(|c| c.get(leaf.name))
        } else {
            current
        };
        if existing.is_some_and(|existing| existing != value) {
            return Err(OpError(
                ScimType::Mutability,
                format!("\"{}\" is immutable and already has a value", target.display),
            ));
        }
    }
    match (target.filter, target.sub, target.attr.multi_valued) {
        (Some(filter), sub, _) => write_filtered(resource, op, target, filter, sub, value),
        (None, Some(sub), false) => {
            let checked = check_single(sub, value, &target.display)?;
            let object = container_mut(resource, target.extension)
                .and_then(|c| {
                    let slot = c
                        .entry(target.attr.name.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    slot.as_object_mut()
                })
                .ok_or_else(no_container)?;
            match checked {
                Some(v) => json::set(object, sub.name, v),
                None => {
                    json::remove(object, sub.name);
                }
            }
            prune_empty(resource, target);
            Ok(())
        }
        (None, Some(_), true) => Err(OpError(
            ScimType::InvalidPath,
            format!(
                "\"{}\": a sub-attribute of the multi-valued \"{}\" needs a value filter (\"{}[…].{}\")",
                target.display, target.attr.name, target.attr.name, leaf.name
            ),
        )),
        (None, None, true) => {
            let checked = check_value(target.attr, value, &target.display)?;
            let new_items = match checked {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let mut items = match op {
                PatchOpKind::Add => take_elements(resource, target),
                _ => Vec::new(),
            };
            let sets_primary = new_items.iter().any(is_primary);
            if sets_primary {
                items.iter_mut().for_each(clear_primary);
            }
            for item in new_items {
                // "If the target location already contains the value specified, no changes
                // SHOULD be made" (RFC 7644 §3.5.2.1).
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            store(resource, target, (!items.is_empty()).then_some(Value::Array(items)))
        }
        (None, None, false) if target.attr.kind == AttrType::Complex => {
            let checked = check_value(target.attr, value, &target.display)?;
            // Sub-attributes not in the value are left unchanged (§3.5.2.1, §3.5.2.3).
            let mut merged = match take(resource, target) {
                Some(Value::Object(existing)) => existing,
                _ => Map::new(),
            };
            if let Some(Value::Object(new_members)) = checked {
                for (key, v) in new_members {
                    merged.insert(key, v);
                }
            }
            store(resource, target, (!merged.is_empty()).then_some(Value::Object(merged)))
        }
        (None, None, false) => {
            let checked = check_value(target.attr, value, &target.display)?;
            store(resource, target, checked)
        }
    }
}

fn write_filtered(
    resource: &mut Map<String, Value>,
    op: PatchOpKind,
    target: &Target<'_>,
    filter: &Filter,
    sub: Option<&'static AttributeDef>,
    value: &Value,
) -> OpResult {
    let checked = match sub {
        Some(sub) => check_single(sub, value, &target.display)?,
        None => check_single(target.attr, value, &target.display)?,
    };
    let mut items = take_elements(resource, target);
    let matched = matching(&items, target.attr, filter);
    if matched.is_empty() {
        return Err(no_match(target));
    }
    let sets_primary = match (&checked, sub) {
        (Some(Value::Bool(true)), Some(s)) => s.name == "primary",
        (Some(v), None) => is_primary(v),
        _ => false,
    };
    if sets_primary {
        items.iter_mut().for_each(clear_primary);
    }
    for index in matched {
        let Some(Value::Object(element)) = items.get_mut(index) else {
            continue;
        };
        match (sub, &checked) {
            (Some(sub), Some(v)) => json::set(element, sub.name, v.clone()),
            (Some(sub), None) => {
                json::remove(element, sub.name);
            }
            (None, Some(Value::Object(new_members))) if op == PatchOpKind::Add => {
                for (key, v) in new_members {
                    json::set(element, key, v.clone());
                }
            }
            (None, Some(Value::Object(new_members))) => *element = new_members.clone(),
            (None, _) => {}
        }
    }
    store(resource, target, Some(Value::Array(items)))
}

fn remove(resource: &mut Map<String, Value>, target: &Target<'_>, has_value: bool) -> OpResult {
    let leaf = target.sub.unwrap_or(target.attr);
    if target.filter.is_none() && leaf.required {
        return Err(OpError(
            ScimType::InvalidValue,
            format!("\"{}\" is required and cannot be removed", target.display),
        ));
    }
    if leaf.mutability == Mutability::Immutable && target.filter.is_none() && has_value && !target.attr.multi_valued {
        return Err(OpError(
            ScimType::Mutability,
            format!("\"{}\" is immutable and cannot be removed", target.display),
        ));
    }
    match (target.filter, target.sub) {
        (Some(filter), sub) => {
            let mut items = take_elements(resource, target);
            let matched = matching(&items, target.attr, filter);
            if matched.is_empty() {
                return Err(no_match(target));
            }
            match sub {
                Some(sub) => {
                    for index in &matched {
                        if let Some(Value::Object(element)) = items.get_mut(*index) {
                            json::remove(element, sub.name);
                        }
                    }
                    items.retain(json::is_assigned);
                }
                None => {
                    let mut index = 0;
                    items.retain(|_| {
                        let keep = !matched.contains(&index);
                        index += 1;
                        keep
                    });
                }
            }
            store(resource, target, (!items.is_empty()).then_some(Value::Array(items)))
        }
        (None, Some(sub)) if target.attr.multi_valued => Err(OpError(
            ScimType::InvalidPath,
            format!(
                "\"{}\": a sub-attribute of the multi-valued \"{}\" needs a value filter",
                target.display, sub.name
            ),
        )),
        (None, Some(sub)) => {
            if let Some(Value::Object(object)) =
                container_mut(resource, target.extension).and_then(|c| json::get_mut(c, target.attr.name))
            {
                json::remove(object, sub.name);
            }
            prune_empty(resource, target);
            Ok(())
        }
        // "If the target location is a multi-valued attribute and no filter is specified, the
        // attribute and all values are removed" (§3.5.2.2) — whatever `value` says.
        (None, None) => store(resource, target, None),
    }
}
