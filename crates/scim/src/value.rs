//! Locating attribute values inside a resource and comparing them as their schema says.

use crate::json;
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceType};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The values an attribute path designates, flattened over multi-valued attributes, and the
/// definition of the attribute they belong to (`None` when no schema knows it).
pub(crate) struct Located<'v> {
    pub(crate) def: Option<&'static AttributeDef>,
    pub(crate) values: Vec<&'v Value>,
}

/// The object holding the attribute: the resource itself, or its extension object.
pub(crate) fn container<'v>(
    resource: &'v Map<String, Value>,
    rt: &ResourceType,
    urn: Option<&str>,
) -> Option<&'v Map<String, Value>> {
    match urn {
        None => Some(resource),
        Some(urn) if urn.eq_ignore_ascii_case(rt.schema.id) => Some(resource),
        Some(urn) => json::get(resource, urn)?.as_object(),
    }
}

/// Locates `path` at resource scope.
pub(crate) fn locate<'v>(resource: &'v Value, rt: &ResourceType, path: &AttrPath) -> Located<'v> {
    let def = rt.resolve(path).map(|r| r.leaf());
    let mut values = Vec::new();
    if let Some(map) = resource.as_object().and_then(|r| container(r, rt, path.urn.as_deref())) {
        if let Some(value) = json::get(map, &path.name) {
            collect(value, path.sub.as_deref(), &mut values);
        }
    }
    Located { def, values }
}

/// Locates a sub-attribute path inside one value of `parent` (value-path scope).
pub(crate) fn locate_in_element<'v>(
    element: &'v Value,
    parent: Option<&'static AttributeDef>,
    path: &AttrPath,
) -> Located<'v> {
    let def = parent.and_then(|p| p.sub_attribute(&path.name));
    let mut values = Vec::new();
    if let Some(value) = element.as_object().and_then(|e| json::get(e, &path.name)) {
        collect(value, path.sub.as_deref(), &mut values);
    }
    Located { def, values }
}

fn collect<'v>(value: &'v Value, sub: Option<&str>, out: &mut Vec<&'v Value>) {
    match (value, sub) {
        (Value::Array(items), _) => items.iter().for_each(|item| collect(item, sub, out)),
        (Value::Object(members), Some(sub)) => {
            if let Some(inner) = json::get(members, sub) {
                collect(inner, None, out);
            }
        }
        (Value::Null, _) => {}
        (_, Some(_)) => {}
        (value, None) => out.push(value),
    }
}

/// A complex value compares through its `value` sub-attribute (`emails co "@x"`).
pub(crate) fn scalar<'v>(
    value: &'v Value,
    def: Option<&'static AttributeDef>,
) -> Option<(&'v Value, Option<&'static AttributeDef>)> {
    match value {
        Value::Object(members) => {
            let inner = json::get(members, "value")?;
            Some((inner, def.and_then(|d| d.sub_attribute("value"))))
        }
        Value::Null => None,
        other => Some((other, def)),
    }
}

pub(crate) fn parse_date_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Orders two scalar values as the attribute's type says: strings honour `caseExact`,
/// date-times compare as instants, numbers numerically. `None` when they do not compare.
pub(crate) fn order(a: &Value, b: &Value, def: Option<&AttributeDef>) -> Option<Ordering> {
    match (a, b) {
        (Value::String(a), Value::String(b)) => {
            if def.is_some_and(|d| d.kind == AttrType::DateTime) {
                if let (Some(x), Some(y)) = (parse_date_time(a), parse_date_time(b)) {
                    return Some(x.cmp(&y));
                }
            }
            if def.is_some_and(|d| d.case_exact) {
                Some(a.cmp(b))
            } else {
                Some(fold(a).cmp(&fold(b)))
            }
        }
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Case folding for `caseExact: false` comparisons.
pub(crate) fn fold(text: &str) -> String {
    text.to_lowercase()
}
