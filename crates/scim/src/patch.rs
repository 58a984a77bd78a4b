//! PATCH (RFC 7644 §3.5.2): strict parsing of the request and application of
//! `add`, `remove` and `replace`, with and without `path`, value-path filters and
//! sub-attribute targets.
//!
//! Decisions, each citing the RFC:
//! - `op` is compared exactly: RFC 7644 §3.5.2 lists "add", "remove" and "replace", and JSON
//!   string values are case-sensitive (RFC 8259 §8.3). `"Replace"` is refused (`invalidSyntax`).
//! - `remove` has no `value` in the RFC; a `value` present is not used. A `remove` of a
//!   multi-valued attribute without a filter removes every value (§3.5.2.2), so
//!   `{"op":"remove","path":"members","value":[…]}` empties the group.
//! - A value filter that matches nothing is `noTarget` for every op (§3.5.2, table of errors).
//! - A readOnly attribute may be named only with its current value (nothing is modified);
//!   any change is `mutability` (RFC 7643 §7: "SHALL NOT be modified").
//! - Setting `primary` to true on one value sets it to false on the others (§3.5.2).
//! - A path that is exactly an extension schema URN targets the whole extension object, as
//!   the path-less form does with the URN as key.
//! - The request is applied atomically: on any error the resource is left unchanged.

use crate::filter::Filter;
use crate::json;
use crate::path::PatchPath;
use crate::resource::{add_schema, check_primary, check_required, check_single, check_value};
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceType, Schema};
use crate::{ScimError, ScimType};
use serde_json::{Map, Value};
use std::fmt;

/// The PatchOp message schema URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `replace`.
    Replace,
}

impl PatchOpKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOpKind,
    /// Where; `None` means the resource itself.
    pub path: Option<PatchPath>,
    /// The value (`add` and `replace`).
    pub value: Option<Value>,
}

/// A parsed PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, applied in order.
    pub operations: Vec<PatchOperation>,
}

/// Why a PATCH request was refused: which operation, the `scimType`, and what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PatchError {
    /// Index of the operation in `Operations`, when one is at fault.
    pub op_index: Option<usize>,
    /// The SCIM error keyword.
    pub scim_type: ScimType,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op_index {
            Some(index) => write!(f, "Operations[{index}]: {}", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

impl PatchError {
    fn at(op_index: usize, scim_type: ScimType, detail: impl Into<String>) -> Self {
        PatchError {
            op_index: Some(op_index),
            scim_type,
            detail: detail.into(),
        }
    }

    fn from_scim(op_index: usize, error: ScimError) -> Self {
        PatchError {
            op_index: Some(op_index),
            scim_type: error.scim_type.unwrap_or(ScimType::InvalidValue),
            detail: error.detail,
        }
    }

    /// The SCIM error (400).
    pub fn to_scim_error(&self) -> ScimError {
        ScimError::bad_request(self.scim_type, self.to_string())
    }
}

impl PatchRequest {
    /// Parses a PatchOp message strictly (RFC 7644 §3.5.2).
    pub fn from_json(body: &Value) -> Result<PatchRequest, PatchError> {
        let syntax = |detail: String| PatchError {
            op_index: None,
            scim_type: ScimType::InvalidSyntax,
            detail,
        };
        let Value::Object(members) = body else {
            return Err(syntax("the body must be a JSON object (a PatchOp message)".to_owned()));
        };
        let schemas_ok = matches!(json::get(members, "schemas"), Some(Value::Array(urns))
            if urns.len() == 1 && urns[0].as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA)));
        if !schemas_ok {
            return Err(syntax(format!("\"schemas\" must be [\"{PATCH_OP_SCHEMA}\"]")));
        }
        if let Some(key) = members
            .keys()
            .find(|k| !k.eq_ignore_ascii_case("schemas") && !k.eq_ignore_ascii_case("Operations"))
        {
            return Err(syntax(format!(
                "unknown member \"{key}\": a PatchOp message has \"schemas\" and \"Operations\""
            )));
        }
        let operations = match json::get(members, "Operations") {
            Some(Value::Array(ops)) if !ops.is_empty() => ops,
            _ => return Err(syntax("\"Operations\" must be a non-empty array".to_owned())),
        };
        let operations = operations
            .iter()
            .enumerate()
            .map(|(i, op)| parse_operation(i, op))
            .collect::<Result<_, _>>()?;
        Ok(PatchRequest { operations })
    }

    /// Applies every operation in order to `resource`, atomically, then checks the result
    /// (required attributes, at most one primary).
    pub fn apply(&self, resource: &mut Value, rt: &ResourceType) -> Result<(), PatchError> {
        let Value::Object(original) = resource else {
            return Err(PatchError {
                op_index: None,
                scim_type: ScimType::InvalidValue,
                detail: "the resource is not an object".into(),
            });
        };
        let mut working = original.clone();
        for (index, operation) in self.operations.iter().enumerate() {
            apply_operation(&mut working, rt, operation).map_err(|e| e.into_patch_error(index))?;
        }
        let last = self.operations.len().saturating_sub(1);
        check_required(&working, rt).map_err(|e| PatchError::from_scim(last, e))?;
        check_primary(&working, rt).map_err(|e| PatchError::from_scim(last, e))?;
        *original = working;
        Ok(())
    }
}

fn parse_operation(index: usize, op: &Value) -> Result<PatchOperation, PatchError> {
    let Value::Object(members) = op else {
        return Err(PatchError::at(
            index,
            ScimType::InvalidSyntax,
            "an operation must be a JSON object",
        ));
    };
    if let Some(key) = members
        .keys()
        .find(|k| !["op", "path", "value"].iter().any(|m| k.eq_ignore_ascii_case(m)))
    {
        return Err(PatchError::at(
            index,
            ScimType::InvalidSyntax,
            format!("unknown member \"{key}\": an operation has \"op\", \"path\" and \"value\""),
        ));
    }
    let kind = match json::get(members, "op") {
        Some(Value::String(s)) if s == "add" => PatchOpKind::Add,
        Some(Value::String(s)) if s == "remove" => PatchOpKind::Remove,
        Some(Value::String(s)) if s == "replace" => PatchOpKind::Replace,
        Some(other) => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidSyntax,
                format!(
                    "\"op\" is {other}; RFC 7644 §3.5.2 allows \"add\", \"remove\" or \"replace\", compared exactly"
                ),
            ))
        }
        None => return Err(PatchError::at(index, ScimType::InvalidSyntax, "\"op\" is missing")),
    };
    let path = match json::get(members, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            PatchPath::parse(text)
                .map_err(|e| PatchError::at(index, ScimType::InvalidPath, format!("\"path\": {e}")))?,
        ),
        Some(other) => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidPath,
                format!("\"path\" must be a string, not {other}"),
            ))
        }
    };
    let value = json::get(members, "value").cloned();
    match (kind, &path, &value) {
        (PatchOpKind::Remove, None, _) => {
            return Err(PatchError::at(
                index,
                ScimType::NoTarget,
                "\"remove\" needs a \"path\" (RFC 7644 §3.5.2.2)",
            ));
        }
        (PatchOpKind::Add | PatchOpKind::Replace, _, None) => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidValue,
                format!("\"{}\" needs a \"value\"", kind.as_str()),
            ));
        }
        (PatchOpKind::Add | PatchOpKind::Replace, None, Some(v)) if !v.is_object() => {
            return Err(PatchError::at(
                index,
                ScimType::InvalidValue,
                format!("without \"path\", \"value\" must be an object of attributes, not {v}"),
            ));
        }
        _ => {}
    }
    Ok(PatchOperation { op: kind, path, value })
}

/// An error inside one operation, before the operation index is known.
struct OpError(ScimType, String);

impl OpError {
    fn into_patch_error(self, index: usize) -> PatchError {
        PatchError::at(index, self.0, self.1)
    }
}

impl From<ScimError> for OpError {
    fn from(error: ScimError) -> Self {
        OpError(error.scim_type.unwrap_or(ScimType::InvalidValue), error.detail)
    }
}

type OpResult = Result<(), OpError>;

/// What a path designates once resolved.
struct Target<'p> {
    extension: Option<&'static Schema>,
    attr: &'static AttributeDef,
    sub: Option<&'static AttributeDef>,
    filter: Option<&'p Filter>,
    display: String,
}

fn apply_operation(resource: &mut Map<String, Value>, rt: &ResourceType, operation: &PatchOperation) -> OpResult {
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

fn container<'r>(resource: &'r Map<String, Value>, extension: Option<&Schema>) -> Option<&'r Map<String, Value>> {
    match extension {
        None => Some(resource),
        Some(ext) => json::get(resource, ext.id)?.as_object(),
    }
}

fn container_mut<'r>(
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
fn store(resource: &mut Map<String, Value>, target: &Target<'_>, value: Option<Value>) -> OpResult {
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
fn prune_empty(resource: &mut Map<String, Value>, target: &Target<'_>) {
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
fn take(resource: &mut Map<String, Value>, target: &Target<'_>) -> Option<Value> {
    let container = match target.extension {
        None => Some(resource),
        Some(ext) => json::get_mut(resource, ext.id).and_then(Value::as_object_mut),
    };
    container
        .and_then(|c| json::get_mut(c, target.attr.name))
        .map(std::mem::take)
}

/// The values of a multi-valued attribute, moved out of the resource (see [`take`]).
fn take_elements(resource: &mut Map<String, Value>, target: &Target<'_>) -> Vec<Value> {
    match take(resource, target) {
        Some(Value::Array(items)) => items,
        Some(Value::Object(single)) => vec![Value::Object(single)],
        _ => Vec::new(),
    }
}

fn matching(items: &[Value], attr: &'static AttributeDef, filter: &Filter) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter.matches_element(item, attr))
        .map(|(i, _)| i)
        .collect()
}

fn no_match(target: &Target<'_>) -> OpError {
    OpError(
        ScimType::NoTarget,
        format!("\"{}\": the value filter matches no value", target.display),
    )
}

fn no_container() -> OpError {
    OpError(
        ScimType::InvalidValue,
        "the attribute's container is not an object".to_owned(),
    )
}

fn is_primary(item: &Value) -> bool {
    item.as_object().and_then(|o| json::get(o, "primary")) == Some(&Value::Bool(true))
}

fn clear_primary(item: &mut Value) {
    if let Some(Value::Bool(primary)) = item.as_object_mut().and_then(|o| json::get_mut(o, "primary")) {
        *primary = false;
    }
}

#[cfg(test)]
mod tests;
