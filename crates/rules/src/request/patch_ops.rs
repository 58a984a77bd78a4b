//! PATCH operations rewritten: `op` in lower case (N1), a multi-valued remove split into one
//! remove per value (N3), dotted keys expanded into operations of their own (N4), an empty
//! member replace as a remove (N19), and a PATCH split to the application's limits (R16).

use super::written::{op_is, path_text, Operations, Written};
use super::Working;
use crate::{Refusal, Target};
use scimtrail_scim::filter::{CompValue, CompareOp};
use scimtrail_scim::schema::ResourceType;
use scimtrail_scim::{json, AttrPath, Filter, PatchPath, ScimError, ScimType};
use serde_json::{json, Map, Value};

impl Working {
    // === N1 ===

    pub(super) fn lowercase_patch_ops(&mut self) {
        self.each_written(|written, changes| {
            let Written::Operation(operation, pointer) = written else {
                return;
            };
            let Some(op) = json::get_mut(operation, "op") else {
                return;
            };
            let Some(text) = op.as_str() else { return };
            let lower = text.to_ascii_lowercase();
            if lower != text && matches!(lower.as_str(), "add" | "remove" | "replace") {
                changes.record(format!("{pointer}/op"), Some(op.clone()), Some(json!(lower)));
                *op = json!(lower);
            }
        });
    }

    // === N3 ===

    pub(super) fn split_multi_value_remove(&mut self) -> Result<(), Refusal> {
        let Some(rt) = self.resource_type else { return Ok(()) };
        let Some(mut operations) = Operations::of(&mut self.request) else {
            return Ok(());
        };
        let mut index = 0;
        while index < operations.list.len() {
            let removes = one_remove_per_value(&operations.list[index], rt).map_err(|values| {
                let (key, path) = (operations.key(), path_of(&operations.list[index]));
                // Forwarded as is, a strict application would remove every value.
                Refusal {
                    rule: self.changes.rule().to_owned(),
                    error: ScimError::bad_request(
                        ScimType::InvalidValue,
                        format!(
                            "{key}[{index}] removes from \"{path}\" the values {values}, but not every one has a string \"value\"; \
                             a remove of \"{path}\" without a filter would remove all of them, so it was not forwarded"
                        ),
                    ),
                }
            })?;
            index += match removes {
                Some(removes) => operations.replace(index, Value::Array(removes), &mut self.changes),
                None => 1,
            };
        }
        Ok(())
    }

    // === N4 ===

    pub(super) fn expand_dotted_keys(&mut self) {
        let Some(rt) = self.resource_type else { return };
        let Some(mut operations) = Operations::of(&mut self.request) else {
            return;
        };
        let mut index = 0;
        while index < operations.list.len() {
            index += match expanded(&operations.list[index], rt) {
                Some(expanded) => operations.replace(index, Value::Array(expanded), &mut self.changes),
                None => 1,
            };
        }
    }

    // === N19 ===

    pub(super) fn empty_members_replace_as_remove(&mut self) {
        let Some(mut operations) = Operations::of(&mut self.request) else {
            return;
        };
        for index in 0..operations.list.len() {
            let Some(object) = operations.list[index].as_object() else {
                continue;
            };
            let on_members = path_text(object).is_some_and(|p| p.eq_ignore_ascii_case("members"));
            let empty = json::get(object, "value").is_some_and(|v| v.as_array().is_some_and(Vec::is_empty));
            if op_is(object, &["replace"]) && on_members && empty {
                let replacement = json!({"op": "remove", "path": "members"});
                operations.replace(index, replacement, &mut self.changes);
            }
        }
    }

    // === R16 ===

    pub(super) fn split_patch(&mut self, target: &Target) {
        if !self.is_patch() || (target.max_patch_operations.is_none() && target.max_operation_values.is_none()) {
            return;
        }
        let original = self.request.body.clone();
        let Some(operations) = Operations::of(&mut self.request).map(|operations| std::mem::take(operations.list))
        else {
            return;
        };
        let before = operations.clone();
        // First, operations whose value array is too long (add and remove only: a replace of
        // a multi-valued attribute must stay whole, or it would mean something else).
        let chunk_size = target.max_operation_values.unwrap_or(usize::MAX).max(1);
        let mut pieces = Vec::with_capacity(operations.len());
        for operation in operations {
            let op = operation.get("op").and_then(Value::as_str).unwrap_or_default();
            let splittable = op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("remove");
            match operation.get("value").and_then(Value::as_array) {
                Some(values) if splittable && values.len() > chunk_size => {
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
        if let Some(operations) = Operations::of(&mut self.request) {
            *operations.list = first;
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
        self.changes.record("", original, Some(Value::Array(sent)));
    }
}

/// An operation's path as sent, for messages.
fn path_of(operation: &Value) -> &str {
    operation.as_object().and_then(path_text).unwrap_or_default()
}

/// N3: a `remove` of a whole multi-valued attribute with values, as one `remove` per value
/// (`members[value eq "A"]`); `Ok(None)` for any other operation. `Err` with the values
/// when one of them has no string `value` to name it by.
fn one_remove_per_value(operation: &Value, rt: &ResourceType) -> Result<Option<Vec<Value>>, Value> {
    let Some(operation) = operation.as_object() else {
        return Ok(None);
    };
    let (true, Some(path_text), Some(value)) = (
        op_is(operation, &["remove"]),
        path_text(operation),
        json::get(operation, "value"),
    ) else {
        return Ok(None);
    };
    let Ok(path) = PatchPath::parse(path_text) else {
        return Ok(None);
    };
    let multi_valued = rt
        .resolve(&path.attr)
        .is_some_and(|resolved| resolved.sub.is_none() && resolved.attr.multi_valued);
    if path.filter.is_some() || !multi_valued {
        return Ok(None);
    }
    let elements: Vec<&Value> = match value {
        Value::Array(elements) => elements.iter().collect(),
        single => vec![single],
    };
    let mut removes = Vec::with_capacity(elements.len());
    for element in elements {
        let id = element
            .as_object()
            .and_then(|element| json::get(element, "value"))
            .and_then(Value::as_str);
        let Some(id) = id else {
            return Err(value.clone());
        };
        let filter = Filter::compare(
            AttrPath::named("value"),
            CompareOp::Eq,
            CompValue::String(id.to_owned()),
        );
        let path = PatchPath {
            attr: path.attr.clone(),
            filter: Some(filter),
        };
        removes.push(json!({"op": "remove", "path": path.to_string()}));
    }
    Ok(Some(removes))
}

/// N4: a path-less `add` or `replace` whose value has dotted or URN-qualified keys, as one
/// operation per such key (that key its path) after a residual path-less one with the rest;
/// `None` for any other operation.
fn expanded(operation: &Value, rt: &ResourceType) -> Option<Vec<Value>> {
    let operation = operation.as_object()?;
    let op = json::get(operation, "op")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let has_path = json::get(operation, "path").is_some();
    let Some(Value::Object(value)) = json::get(operation, "value") else {
        return None;
    };
    let is_write = op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("replace");
    let is_path_key =
        |k: &str| (k.contains('.') || k.starts_with("urn:")) && rt.extension(k).is_none() && !k.contains('[');
    if has_path || !is_write || !value.keys().any(|k| is_path_key(k)) {
        return None;
    }
    let mut residual = Map::new();
    let mut expanded = Vec::new();
    for (k, v) in value {
        if is_path_key(k) {
            expanded.push(json!({"op": op, "path": k, "value": v}));
        } else {
            residual.insert(k.clone(), v.clone());
        }
    }
    let mut replacement = Vec::new();
    if !residual.is_empty() {
        let mut kept = operation.clone();
        if let Some(value_key) = json::find_key(&kept, "value").cloned() {
            kept.insert(value_key, Value::Object(residual));
        }
        replacement.push(Value::Object(kept));
    }
    replacement.extend(expanded);
    Some(replacement)
}
