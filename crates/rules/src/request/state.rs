//! Stateful request rules: they read the resource as the application has it (the proxy's
//! snapshot, or a fresh GET) and keep a working copy of it as the operations go.

use super::{Edits, Working};
use crate::{Refusal, Target};
use scimtrail_scim::filter::{AttrTest, CompValue, CompareOp};
use scimtrail_scim::schema::{AttrType, Resolved};
use scimtrail_scim::{json, AttrPath, Filter, PatchPath, PatchRequest, ScimError};
use serde_json::{json, Map, Value};

/// Whether normalising `request` with these rules needs the resource's current state.
pub(crate) fn needs_state(working: &Working, target: &Target, actions: &[&crate::Action]) -> bool {
    if working.resource_id.is_none() || working.resource_type.is_none() {
        return false;
    }
    let is_put = working.request.method.eq_ignore_ascii_case("PUT");
    if !working.is_patch() {
        return is_put && !target.put && actions.iter().any(|a| matches!(a, crate::Action::ShapeMethod));
    }
    let filtered_write = working.operation_objects().any(|operation| {
        let writes = json::get(operation, "op")
            .and_then(Value::as_str)
            .is_some_and(|op| op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("replace"));
        writes && has_value_filter(operation)
    });
    let any_filter = working.operation_objects().any(has_value_filter);
    actions.iter().any(|action| match action {
        crate::Action::CreateMissingFilteredElement => filtered_write,
        crate::Action::WholeAttributeReplace => !target.value_path_filters && any_filter,
        crate::Action::ShapeMethod => !target.patch,
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
        let (Some(rt), Some(mut state)) = (self.resource_type, self.state.take()) else {
            return;
        };
        let key = self.operations_key();
        let mut edits: Edits = Vec::new();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                let Some(object) = operation.as_object() else { continue };
                let writes = json::get(object, "op")
                    .and_then(Value::as_str)
                    .is_some_and(|op| op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("replace"));
                let Some(path) = json::get(object, "path")
                    .and_then(Value::as_str)
                    .and_then(|p| PatchPath::parse(p).ok())
                else {
                    continue;
                };
                let (Some(filter), Some(sub), Some(value), true) =
                    (&path.filter, &path.attr.sub, json::get(object, "value"), writes)
                else {
                    continue;
                };
                let attr_path = AttrPath {
                    sub: None,
                    ..path.attr.clone()
                };
                let Some(resolved) = rt.resolve(&attr_path) else {
                    continue;
                };
                let Some(sub_def) = resolved.attr.sub_attribute(sub) else {
                    continue;
                };
                if !resolved.attr.multi_valued || resolved.attr.kind != AttrType::Complex {
                    continue;
                }
                let Some(values) = values_mut(&mut state, &resolved) else {
                    continue;
                };
                if values
                    .iter()
                    .any(|element| filter.matches_element(element, resolved.attr))
                {
                    continue;
                }
                let Some(mut element) = element_from(filter) else {
                    continue;
                };
                element.insert(sub_def.name.to_owned(), value.clone());
                let has_primary = values.iter().any(|e| e.get("primary") == Some(&Value::Bool(true)));
                if resolved.attr.sub_attribute("primary").is_some() && !has_primary && !element.contains_key("primary")
                {
                    element.insert("primary".to_owned(), Value::Bool(true));
                }
                values.push(Value::Object(element.clone()));
                let replacement = json!({"op": "add", "path": resolved_path(&resolved), "value": [element]});
                replace_operation(operation, replacement, format!("/{key}/{index}"), &mut edits);
            }
        }
        self.state = Some(state);
        self.record(edits);
    }

    // === R13 ===

    pub(super) fn whole_attribute_replace(&mut self, target: &Target) {
        if target.value_path_filters {
            return;
        }
        let (Some(rt), Some(mut state)) = (self.resource_type, self.state.take()) else {
            return;
        };
        let key = self.operations_key();
        let mut edits: Edits = Vec::new();
        if let Some(operations) = self.operations() {
            for (index, operation) in operations.iter_mut().enumerate() {
                // The state follows every operation, so that later ones see earlier ones.
                let single =
                    json!({"schemas": [scimtrail_scim::patch::PATCH_OP_SCHEMA], "Operations": [operation.clone()]});
                let path = operation
                    .as_object()
                    .and_then(|o| json::get(o, "path"))
                    .and_then(Value::as_str)
                    .and_then(|p| PatchPath::parse(p).ok());
                let Ok(patch) = PatchRequest::from_json(&single) else {
                    continue;
                };
                let mut next = state.clone();
                if patch.apply(&mut next, rt).is_err() {
                    continue;
                }
                state = next;
                let Some(path) = path.filter(|p| p.filter.is_some()) else {
                    continue;
                };
                let attr_path = AttrPath { sub: None, ..path.attr };
                let Some(resolved) = rt.resolve(&attr_path) else {
                    continue;
                };
                let whole = values_mut(&mut state, &resolved).map(|values| Value::Array(values.clone()));
                let replacement =
                    json!({"op": "replace", "path": resolved_path(&resolved), "value": whole.unwrap_or(json!([]))});
                replace_operation(operation, replacement, format!("/{key}/{index}"), &mut edits);
            }
        }
        self.state = Some(state);
        self.record(edits);
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
        let refuse = |rule: &str, error: ScimError| Refusal {
            rule: rule.to_owned(),
            error,
        };
        let Some(state) = self.state.clone() else {
            return Err(refuse(
                &self.rule,
                ScimError::new(
                    502,
                    None,
                    "the application takes no PATCH, and the resource's current state could not be read to turn it into a PUT",
                ),
            ));
        };
        let body = self.request.body.clone().unwrap_or(Value::Null);
        let patch = PatchRequest::from_json(&body).map_err(|error| refuse(&self.rule, error.to_scim_error()))?;
        let mut resource = state;
        patch
            .apply(&mut resource, rt)
            .map_err(|error| refuse(&self.rule, error.to_scim_error()))?;
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

fn replace_operation(operation: &mut Value, replacement: Value, pointer: String, edits: &mut Edits) {
    edits.push((pointer, Some(operation.clone()), Some(replacement.clone())));
    *operation = replacement;
}

impl Working {
    /// N20 the other way: the PUT's differences from the current resource, as one PATCH.
    fn put_as_patch(&mut self) -> Result<(), Refusal> {
        let Some(rt) = self.resource_type else { return Ok(()) };
        let Some(state) = self.state.clone() else {
            return Err(Refusal {
                rule: self.rule.clone(),
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
                    let current = json::get(current, name).and_then(Value::as_object);
                    for (attribute, value) in attributes {
                        let before = current.and_then(|c| json::get(c, attribute));
                        diff(format!("{}:{attribute}", extension.schema.id), before, Some(value));
                    }
                    for (attribute, before) in current.into_iter().flatten() {
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
        let mut edits: Edits = vec![
            (
                "method".to_owned(),
                Some(json!(self.request.method)),
                Some(json!(method)),
            ),
            (String::new(), self.request.body.clone(), Some(body.clone())),
        ];
        if let Some(version) = &version {
            edits.push(("header:if-match".to_owned(), None, Some(json!(version))));
        }
        self.request.method = method.to_owned();
        self.request.body = Some(body);
        self.request.if_match = version;
        self.record(edits);
    }

    // === R16 ===

    pub(super) fn split_patch(&mut self, target: &Target) {
        if !self.is_patch() || (target.max_patch_operations.is_none() && target.max_operation_values.is_none()) {
            return;
        }
        let original = self.request.body.clone();
        let Some(operations) = self.operations().map(std::mem::take) else {
            return;
        };
        let before = operations.clone();
        // First, operations whose value array is too long (add and remove only: a replace of
        // a multi-valued attribute must stay whole, or it would mean something else).
        let chunk_size = target.max_operation_values.unwrap_or(usize::MAX).max(1);
        let mut pieces = Vec::with_capacity(operations.len());
        for operation in operations {
            let op = operation
                .get("op")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_lowercase();
            match operation.get("value").and_then(Value::as_array) {
                Some(values) if (op == "add" || op == "remove") && values.len() > chunk_size => {
                    for chunk in values.chunks(chunk_size) {
                        let mut piece = operation.clone();
                        if let Some(object) = piece.as_object_mut() {
                            object.insert("value".to_owned(), Value::Array(chunk.to_vec()));
                        }
                        pieces.push(piece);
                    }
                }
                _ => pieces.push(operation),
            }
        }
        // Then, requests of at most `max_patch_operations` operations each.
        let per_request = target.max_patch_operations.unwrap_or(usize::MAX).max(1);
        let mut chunks: Vec<Vec<Value>> = pieces.chunks(per_request).map(<[Value]>::to_vec).collect();
        let first = if chunks.is_empty() {
            Vec::new()
        } else {
            chunks.remove(0)
        };
        let unchanged = chunks.is_empty() && first == before;
        if let Some(operations) = self.operations() {
            *operations = first;
        }
        if unchanged {
            return;
        }
        let mut sent = vec![self.request.body.clone().unwrap_or(Value::Null)];
        for chunk in chunks {
            let mut next = self.request.clone();
            next.then = Vec::new();
            next.if_match = None;
            if let Some(body) = next.body.as_mut().and_then(Value::as_object_mut) {
                let key = json::find_key(body, "Operations")
                    .cloned()
                    .unwrap_or_else(|| "Operations".to_owned());
                body.insert(key, Value::Array(chunk));
            }
            sent.push(next.body.clone().unwrap_or(Value::Null));
            self.request.then.push(next);
        }
        self.record(vec![(String::new(), original, Some(Value::Array(sent)))]);
    }
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
