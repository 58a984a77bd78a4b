//! Stateful request rules: they read the resource as the application has it (the proxy's
//! snapshot, or a fresh GET) and keep a working copy of it as the operations go.

use super::written::{op_is, Operations};
use super::Working;
use crate::action::RequestAction;
use crate::{Refusal, Target};
use scimtrail_scim::filter::{AttrTest, CompValue, CompareOp};
use scimtrail_scim::schema::{AttrType, Resolved, ResourceType};
use scimtrail_scim::{json, AttrPath, Filter, PatchPath, PatchRequest, ScimError};
use serde_json::{json, Map, Value};

/// Whether normalising `request` with these rules needs the resource's current state.
pub(super) fn needs_state(working: &Working, target: &Target, actions: &[&RequestAction]) -> bool {
    if working.resource_id.is_none() || working.resource_type.is_none() {
        return false;
    }
    let is_put = working.request.method.eq_ignore_ascii_case("PUT");
    if !working.is_patch() {
        return is_put && !target.put && actions.iter().any(|a| matches!(a, RequestAction::ShapeMethod));
    }
    let filtered_write = working
        .operation_objects()
        .any(|operation| op_is(operation, &["add", "replace"]) && has_value_filter(operation));
    let any_filter = working.operation_objects().any(has_value_filter);
    actions.iter().any(|action| match action {
        RequestAction::CreateMissingFilteredElement => filtered_write,
        RequestAction::WholeAttributeReplace => !target.value_path_filters && any_filter,
        RequestAction::ShapeMethod => !target.patch,
        _ => false,
    })
}

fn has_value_filter(operation: &Map<String, Value>) -> bool {
    json::get(operation, "path")
        .and_then(Value::as_str)
        .is_some_and(|path| path.contains('['))
}

impl Working {
    fn operation_objects(&self) -> impl Iterator<Item = &Map<String, Value>> {
        self.request
            .body
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|body| json::get(body, "Operations"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
    }

    // === N8 ===

    pub(super) fn create_missing_filtered_element(&mut self) {
        self.rewrite_with_state(element_added);
    }

    // === R13 ===

    pub(super) fn whole_attribute_replace(&mut self, target: &Target) {
        if !target.value_path_filters {
            self.rewrite_with_state(whole_replace);
        }
    }

    /// Puts what `rewrite` makes of each operation in its place, given the working state
    /// (which it keeps up to date); nothing without a state.
    fn rewrite_with_state(&mut self, rewrite: fn(&Value, &ResourceType, &mut Value) -> Option<Value>) {
        let (Some(rt), Some(mut state)) = (self.resource_type, self.state.take()) else {
            return;
        };
        if let Some(mut operations) = Operations::of(&mut self.request) {
            for index in 0..operations.list.len() {
                if let Some(replacement) = rewrite(&operations.list[index], rt, &mut state) {
                    operations.replace(index, replacement, &mut self.changes);
                }
            }
        }
        self.state = Some(state);
    }

    // === N20 ===

    pub(super) fn shape_method(&mut self, target: &Target) -> Result<(), Refusal> {
        if !target.put && self.request.method.eq_ignore_ascii_case("PUT") && self.resource_id.is_some() {
            return self.put_as_patch();
        }
        if target.patch || !self.is_patch() {
            return Ok(());
        }
        let Some(rt) = self.resource_type else { return Ok(()) };
        let rule = self.changes.rule().to_owned();
        let refuse = |error: ScimError| Refusal {
            rule: rule.clone(),
            error,
        };
        let Some(state) = self.state.clone() else {
            return Err(refuse(ScimError::new(
                    502,
                    None,
                "the application takes no PATCH, and the resource's current state could not be read to turn it into a PUT",
            )));
        };
        let body = self.request.body.clone().unwrap_or(Value::Null);
        let patch = PatchRequest::from_json(&body).map_err(|error| refuse(error.to_scim_error()))?;
        let mut resource = state;
        patch
            .apply(&mut resource, rt)
            .map_err(|error| refuse(error.to_scim_error()))?;
        let version = resource
            .get("meta")
            .and_then(|meta| meta.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(object) = resource.as_object_mut() {
            object.remove("meta");
        }
        self.reshape("PUT", resource, version);
        Ok(())
    }
}

impl Working {
    /// N20 the other way: the PUT's differences from the current resource, as one PATCH.
    fn put_as_patch(&mut self) -> Result<(), Refusal> {
        let Some(rt) = self.resource_type else { return Ok(()) };
        let Some(state) = self.state.clone() else {
            return Err(Refusal {
                rule: self.changes.rule().to_owned(),
                error: ScimError::new(
                    502,
                    None,
                    "the application takes no PUT, and the resource's current state could not be read to turn it into a PATCH",
                ),
            });
        };
        let Some(wanted) = self.request.body.clone() else {
            return Ok(());
        };
        let mut operations = Vec::new();
        let (Some(wanted_object), Some(current)) = (wanted.as_object(), state.as_object()) else {
            return Ok(());
        };
        // Attributes the client may not write, and the resource's own identity, are no part of
        // the difference.
        let ignored = |name: &str| {
            ["id", "meta", "schemas", "password"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
                || rt.top_attribute(name).is_some_and(|def| {
                    matches!(
                        def.mutability,
                        scimtrail_scim::schema::Mutability::ReadOnly | scimtrail_scim::schema::Mutability::Immutable
                    )
                })
        };
        let mut diff = |path: String, before: Option<&Value>, after: Option<&Value>| match (before, after) {
            (Some(before), Some(after)) if before == after => {}
            (_, Some(after)) if !after.is_null() => {
                operations.push(json!({"op": "replace", "path": path, "value": after}));
            }
            (Some(_), _) => operations.push(json!({"op": "remove", "path": path})),
            (None, _) => {}
        };
        for (name, value) in wanted_object {
            if ignored(name) {
                continue;
            }
            match (rt.extension(name), value.as_object()) {
                (Some(extension), Some(attributes)) => {
                    for (attribute, value) in attributes {
                        let before = json::attribute(current, Some(name), attribute);
                        diff(format!("{}:{attribute}", extension.schema.id), before, Some(value));
                    }
                    let held = json::get(current, name).and_then(Value::as_object);
                    for (attribute, before) in held.into_iter().flatten() {
                        if json::get(attributes, attribute).is_none() {
                            diff(format!("{}:{attribute}", extension.schema.id), Some(before), None);
                        }
                    }
                }
                _ => diff(name.clone(), json::get(current, name), Some(value)),
            }
        }
        // What the PUT leaves out, it clears (RFC 7644 §3.5.1).
        for (name, before) in current {
            if !ignored(name) && rt.extension(name).is_none() && json::get(wanted_object, name).is_none() {
                diff(name.clone(), Some(before), None);
            }
        }
        let patch = json!({"schemas": [scimtrail_scim::patch::PATCH_OP_SCHEMA], "Operations": operations});
        let version = current
            .get("meta")
            .and_then(|meta| meta.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.reshape("PATCH", patch, version);
        Ok(())
    }

    /// N20's rewrite, either way: the new method and body, guarded by the resource's
    /// version, each recorded.
    fn reshape(&mut self, method: &str, body: Value, version: Option<String>) {
        let changes = &mut self.changes;
        changes.record("method", Some(json!(self.request.method)), Some(json!(method)));
        changes.record("", self.request.body.clone(), Some(body.clone()));
        if let Some(version) = &version {
            changes.record("header:if-match", None, Some(json!(version)));
        }
        self.request.method = method.to_owned();
        self.request.body = Some(body);
        self.request.if_match = version;
    }
}

/// N8 for one operation: a write to a filtered element the resource lacks, as an `add` of
/// the element built from the filter (also added to `state`); `None` for any other.
fn element_added(operation: &Value, rt: &ResourceType, state: &mut Value) -> Option<Value> {
    let object = operation.as_object()?;
    let writes = op_is(object, &["add", "replace"]);
    let path = json::get(object, "path")
        .and_then(Value::as_str)
        .and_then(|p| PatchPath::parse(p).ok())?;
    let (Some(filter), Some(sub), Some(value), true) =
        (&path.filter, &path.attr.sub, json::get(object, "value"), writes)
    else {
        return None;
    };
    let attr_path = AttrPath {
        sub: None,
        ..path.attr.clone()
    };
    let resolved = rt.resolve(&attr_path)?;
    let sub_def = resolved.attr.sub_attribute(sub)?;
    if !resolved.attr.multi_valued || resolved.attr.kind != AttrType::Complex {
        return None;
    }
    let values = values_mut(state, &resolved)?;
    if values
        .iter()
        .any(|element| filter.matches_element(element, resolved.attr))
    {
        return None;
    }
    let mut element = element_from(filter)?;
    element.insert(sub_def.name.to_owned(), value.clone());
    let has_primary = values.iter().any(|e| e.get("primary") == Some(&Value::Bool(true)));
    if resolved.attr.sub_attribute("primary").is_some() && !has_primary && !element.contains_key("primary") {
        element.insert("primary".to_owned(), Value::Bool(true));
    }
    values.push(Value::Object(element.clone()));
    Some(json!({"op": "add", "path": resolved_path(&resolved), "value": [element]}))
}

/// R13 for one operation, applied to `state` first: a write through a value-path filter as a
/// `replace` of the whole attribute, as `state` then holds it; `None` for any other.
fn whole_replace(operation: &Value, rt: &ResourceType, state: &mut Value) -> Option<Value> {
    // The state follows every operation, so that later ones see earlier ones.
    let single = json!({"schemas": [scimtrail_scim::patch::PATCH_OP_SCHEMA], "Operations": [operation.clone()]});
    let path = operation
        .as_object()
        .and_then(|o| json::get(o, "path"))
        .and_then(Value::as_str)
        .and_then(|p| PatchPath::parse(p).ok());
    let Ok(patch) = PatchRequest::from_json(&single) else {
        return None;
    };
    let mut next = state.clone();
    if patch.apply(&mut next, rt).is_err() {
        return None;
    }
    *state = next;
    let path = path.filter(|p| p.filter.is_some())?;
    let attr_path = AttrPath { sub: None, ..path.attr };
    let resolved = rt.resolve(&attr_path)?;
    let whole = values_mut(state, &resolved).map(|values| Value::Array(values.clone()));
    let replacement = json!({"op": "replace", "path": resolved_path(&resolved), "value": whole.unwrap_or(json!([]))});
    Some(replacement)
}

/// The values of a multi-valued attribute in a resource (inside its extension object when it
/// has one), created empty when absent.
fn values_mut<'a>(resource: &'a mut Value, resolved: &Resolved) -> Option<&'a mut Vec<Value>> {
    let mut object = resource.as_object_mut()?;
    if let Some(extension) = resolved.extension {
        if json::get(object, extension.id).is_none() {
            object.insert(extension.id.to_owned(), json!({}));
        }
        object = json::get_mut(object, extension.id)?.as_object_mut()?;
    }
    if json::get(object, resolved.attr.name).is_none() {
        object.insert(resolved.attr.name.to_owned(), json!([]));
    }
    json::get_mut(object, resolved.attr.name)?.as_array_mut()
}

fn resolved_path(resolved: &Resolved) -> String {
    match resolved.extension {
        Some(extension) => format!("{}:{}", extension.id, resolved.attr.name),
        None => resolved.attr.name.to_owned(),
    }
}

/// `type eq "work" and display eq "x"` → `{"type": "work", "display": "x"}`; `None` for any
/// other filter (the element it selects cannot be built from it).
fn element_from(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Attr {
            path,
            test: AttrTest::Compare(CompareOp::Eq, value),
        } if path.urn.is_none() && path.sub.is_none() => {
            let value = match value {
                CompValue::String(text) => json!(text),
                CompValue::Bool(flag) => json!(flag),
                CompValue::Number(number) => Value::Number(number.clone()),
                CompValue::Null => return None,
            };
            let mut element = Map::new();
            element.insert(path.name.clone(), value);
            Some(element)
        }
        Filter::And(left, right) => {
            let mut element = element_from(left)?;
            element.extend(element_from(right)?);
            Some(element)
        }
        _ => None,
    }
}
