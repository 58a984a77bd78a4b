//! What a request writes, walked once for every rule that reads it: the body of a POST or PUT
//! of a resource, then each PATCH operation. With it, the operations list (and the one way to
//! put operations in another's place) and the schema-guided walks inside a written value.

use super::Working;
use crate::changes::Changes;
use crate::resource::pointer_token;
use crate::Request;
use scimtrail_scim::json;
use scimtrail_scim::schema::{AttrType, AttributeDef, ResourceType, Schema};
use serde_json::{Map, Value};

/// One piece of what a request writes.
pub(super) enum Written<'a> {
    /// The body of a POST or PUT of a resource (its pointer is the empty one).
    Body(&'a mut Map<String, Value>),
    /// One PATCH operation, and the pointer to it (`/Operations/3`).
    Operation(&'a mut Map<String, Value>, String),
}

impl Working {
    /// Visits what the request writes, in order: the body of a POST or PUT of a resource,
    /// then each PATCH operation that is an object. Each visit may record its edits.
    pub(super) fn each_written(&mut self, mut visit: impl FnMut(Written<'_>, &mut Changes)) {
        if self.is_resource_write() {
            if let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) {
                visit(Written::Body(body), &mut self.changes);
            }
        }
        let Some(operations) = Operations::of(&mut self.request) else {
            return;
        };
        for index in 0..operations.list.len() {
            let pointer = operations.pointer(index);
            if let Some(operation) = operations.list[index].as_object_mut() {
                visit(Written::Operation(operation, pointer), &mut self.changes);
            }
        }
    }
}

/// The operations of a PATCH request, and the key they are under in its body (`Operations`,
/// in the IdP's spelling).
pub(super) struct Operations<'a> {
    pub(super) list: &'a mut Vec<Value>,
    key: String,
}

impl<'a> Operations<'a> {
    /// The operations of `request`; `None` unless it is a PATCH with an operations array.
    pub(super) fn of(request: &'a mut Request) -> Option<Operations<'a>> {
        if !request.method.eq_ignore_ascii_case("PATCH") {
            return None;
        }
        let body = request.body.as_mut()?.as_object_mut()?;
        let key = json::find_key(body, "Operations")?.clone();
        let list = body.get_mut(&key)?.as_array_mut()?;
        Some(Operations { list, key })
    }

    /// The key the operations are under.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The pointer to operation `index`.
    pub(super) fn pointer(&self, index: usize) -> String {
        format!("/{}/{index}", self.key)
    }

    /// Puts `replacement` in place of operation `index` — one operation, or an array of
    /// operations that stand there in order — and records the edit as exactly that. Returns
    /// how many operations now stand where the one was.
    pub(super) fn replace(&mut self, index: usize, replacement: Value, changes: &mut Changes) -> usize {
        let before = self.list[index].clone();
        changes.record(self.pointer(index), Some(before), Some(replacement.clone()));
        match replacement {
            Value::Array(several) => {
                let count = several.len();
                self.list.splice(index..=index, several);
                count
            }
            one => {
                self.list[index] = one;
                1
            }
        }
    }
}

/// An operation's `path`, when it is a string.
pub(super) fn path_text(operation: &Map<String, Value>) -> Option<&str> {
    json::get(operation, "path").and_then(Value::as_str)
}

/// Whether an operation's `op` is one of `ops`, in any case.
pub(super) fn op_is(operation: &Map<String, Value>, ops: &[&str]) -> bool {
    json::get(operation, "op")
        .and_then(Value::as_str)
        .is_some_and(|op| ops.iter().any(|wanted| op.eq_ignore_ascii_case(wanted)))
}

/// Visits every attribute of a resource-shaped object that the schema knows (extension
/// objects included) with its definition: the whole value, array or not.
pub(super) fn for_each_attribute(
    object: &mut Map<String, Value>,
    rt: &ResourceType,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    for (key, value) in object.iter_mut() {
        let here = format!("{pointer}/{}", pointer_token(key));
        if let Some(extension) = rt.extension(key) {
            if let Some(inner) = value.as_object_mut() {
                for_each_in_schema(inner, extension.schema, &here, visit);
            }
        } else if let Some(def) = rt.top_attribute(key) {
            visit(def, value, &here);
        }
    }
}

fn for_each_in_schema(
    object: &mut Map<String, Value>,
    schema: &Schema,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    for (key, value) in object.iter_mut() {
        if let Some(def) = schema.attribute(key) {
            visit(def, value, &format!("{pointer}/{}", pointer_token(key)));
        }
    }
}

/// Visits every leaf value of a resource-shaped object: each element of a multi-valued
/// attribute and each sub-attribute of a complex one.
pub(super) fn walk_resource(
    object: &mut Map<String, Value>,
    rt: &ResourceType,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    for_each_attribute(object, rt, pointer, &mut |def, value, pointer| {
        walk_values(value, def, pointer, visit)
    });
}

/// Visits `value` as a value of `def`: each element if it is an array, then each
/// sub-attribute if complex.
pub(super) fn walk_values(
    value: &mut Value,
    def: &AttributeDef,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    match value {
        Value::Array(elements) if def.multi_valued => {
            for (index, element) in elements.iter_mut().enumerate() {
                walk_one(element, def, &format!("{pointer}/{index}"), visit);
            }
        }
        _ => walk_one(value, def, pointer, visit),
    }
}

fn walk_one(
    value: &mut Value,
    def: &AttributeDef,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    if def.kind == AttrType::Complex {
        walk_sub_attributes(value, def, pointer, visit);
    } else {
        visit(def, value, pointer);
    }
}

/// Visits each sub-attribute of one complex value.
pub(super) fn walk_sub_attributes(
    value: &mut Value,
    def: &AttributeDef,
    pointer: &str,
    visit: &mut impl FnMut(&AttributeDef, &mut Value, &str),
) {
    if let Some(object) = value.as_object_mut() {
        for (key, sub_value) in object.iter_mut() {
            if let Some(sub) = def.sub_attribute(key) {
                visit(sub, sub_value, &format!("{pointer}/{}", pointer_token(key)));
            }
        }
    }
}
