//! Resources as JSON: checking a request body against its resource type's schemas
//! (types, names, `schemas`, required attributes, at most one `primary`), and projecting a
//! resource for a response (`attributes`, `excludedAttributes`, `returned`).

use crate::json;
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceType, Returned, Schema};
use crate::value::{locate, order, parse_date_time};
use crate::{ScimError, ScimType};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// Checks a POST or PUT body and returns the resource in canonical form: attribute names in
/// their schema spelling, `null` and empty arrays dropped (RFC 7643 §2.5), readOnly attributes
/// dropped (RFC 7644 §3.5.1: "Any values provided SHALL be ignored").
///
/// Refused with 400: a body that is not an object or whose `schemas` does not name the core
/// schema, an unknown schema or attribute, an extension object not named in `schemas`
/// (`invalidSyntax`); a value of the wrong type, a missing required attribute, two
/// `primary: true` values (`invalidValue`).
pub fn check_input(body: &Value, rt: &ResourceType) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(members) = body else {
        return Err(invalid_syntax(format!(
            "the body must be a JSON object (a {} resource)",
            rt.name
        )));
    };
    let declared = check_schemas(members, rt)?;
    let mut out = Map::new();
    out.insert(
        "schemas".into(),
        Value::Array(vec![Value::String(rt.schema.id.to_owned())]),
    );
    for (key, value) in members {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            if !declared.iter().any(|d| d.eq_ignore_ascii_case(ext.schema.id)) {
                return Err(invalid_syntax(format!(
                    "the extension object \"{key}\" is present but its URN is not listed in \"schemas\" (RFC 7643 §3)"
                )));
            }
            let Value::Object(ext_members) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(invalid_value(format!(
                    "\"{key}\" must be an object of extension attributes"
                )));
            };
            let checked = check_attributes(ext_members, ext.schema, None, rt)?;
            if !checked.is_empty() {
                add_schema(&mut out, ext.schema.id);
                out.insert(ext.schema.id.to_owned(), Value::Object(checked));
            }
            continue;
        }
        let def = rt.top_attribute(key).ok_or_else(|| unknown_attribute(key, rt))?;
        if def.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(checked) = check_value(def, value, def.name)? {
            out.insert(def.name.to_owned(), checked);
        }
    }
    check_required(&out, rt)?;
    check_primary(&out, rt)?;
    Ok(out)
}

fn check_schemas(members: &Map<String, Value>, rt: &ResourceType) -> Result<Vec<String>, ScimError> {
    let expected = format!("\"schemas\" must be an array containing \"{}\"", rt.schema.id);
    let Some(Value::Array(urns)) = json::get(members, "schemas") else {
        return Err(invalid_syntax(expected));
    };
    let mut declared = Vec::new();
    for urn in urns {
        let Some(urn) = urn.as_str() else {
            return Err(invalid_syntax(expected));
        };
        if !urn.eq_ignore_ascii_case(rt.schema.id) && rt.extension(urn).is_none() {
            return Err(invalid_syntax(format!(
                "\"schemas\" lists \"{urn}\", which is neither {} nor one of its extensions ({})",
                rt.schema.id,
                rt.extensions.iter().map(|e| e.schema.id).collect::<Vec<_>>().join(", ")
            )));
        }
        declared.push(urn.to_owned());
    }
    if !declared.iter().any(|d| d.eq_ignore_ascii_case(rt.schema.id)) {
        return Err(invalid_syntax(expected));
    }
    Ok(declared)
}

fn check_attributes(
    members: &Map<String, Value>,
    schema: &Schema,
    parent: Option<&str>,
    rt: &ResourceType,
) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in members {
        let def = schema.attribute(key).ok_or_else(|| unknown_attribute(key, rt))?;
        if def.mutability == Mutability::ReadOnly {
            continue;
        }
        let path = parent.map_or_else(
            || format!("{}:{}", schema.id, def.name),
            |p| format!("{p}.{}", def.name),
        );
        if let Some(checked) = check_value(def, value, &path)? {
            out.insert(def.name.to_owned(), checked);
        }
    }
    Ok(out)
}

/// Adds `urn` to a resource's `schemas` unless it is there.
pub(crate) fn add_schema(resource: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(urns)) = json::get_mut(resource, "schemas") {
        if !urns
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(urn)))
        {
            urns.push(Value::String(urn.to_owned()));
        }
    }
}

/// Checks a value against its definition (whole attribute: an array when multi-valued) and
/// returns it with canonical sub-attribute names, or `None` when it is unassigned.
/// `path` names the attribute in error details.
pub fn check_value(def: &AttributeDef, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    if !def.multi_valued {
        return check_single(def, value, path);
    }
    match value {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                if let Some(checked) = check_single(def, item, &format!("{path}[{index}]"))? {
                    out.push(checked);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Array(out)))
        }
        other => Err(invalid_value(format!(
            "\"{path}\" is multi-valued and must be an array, not {}",
            describe(other)
        ))),
    }
}

/// Checks one value (an element of a multi-valued attribute, or a single-valued attribute).
pub fn check_single(def: &AttributeDef, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    let wrong = |what: &str| {
        Err(invalid_value(format!(
            "\"{path}\" is of type {}{} and must be {what}, not {}",
            def.kind.as_str(),
            if def.multi_valued {
                " (one value of a multi-valued attribute)"
            } else {
                ""
            },
            describe(value)
        )))
    };
    match (def.kind, value) {
        (_, Value::Null) => Ok(None),
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => Ok(Some(value.clone())),
        (AttrType::String | AttrType::Reference | AttrType::Binary, _) => wrong("a string"),
        (AttrType::DateTime, Value::String(text)) if parse_date_time(text).is_some() => Ok(Some(value.clone())),
        (AttrType::DateTime, _) => wrong("an RFC 3339 date-time string"),
        (AttrType::Boolean, Value::Bool(_)) => Ok(Some(value.clone())),
        (AttrType::Boolean, _) => wrong("true or false"),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(value.clone())),
        (AttrType::Integer, _) => wrong("an integer"),
        (AttrType::Decimal, Value::Number(_)) => Ok(Some(value.clone())),
        (AttrType::Decimal, _) => wrong("a number"),
        (AttrType::Complex, Value::Object(members)) => {
            let mut out = Map::new();
            for (key, sub_value) in members {
                let sub = def.sub_attribute(key).ok_or_else(|| {
                    invalid_syntax(format!(
                        "\"{path}\" has no sub-attribute \"{key}\" (it has {})",
                        def.sub_attributes.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                if let Some(checked) = check_single(sub, sub_value, &format!("{path}.{}", sub.name))? {
                    out.insert(sub.name.to_owned(), checked);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        (AttrType::Complex, _) => wrong("an object"),
    }
}

/// Checks that every required attribute of the core schema and of required extensions is set.
pub fn check_required(resource: &Map<String, Value>, rt: &ResourceType) -> Result<(), ScimError> {
    for def in rt.schema.attributes.iter().filter(|d| d.required) {
        if !json::get(resource, def.name).is_some_and(json::is_assigned) {
            return Err(invalid_value(format!(
                "\"{}\" is required for a {} (RFC 7643 §4)",
                def.name, rt.name
            )));
        }
    }
    for ext in rt.extensions.iter().filter(|e| e.required) {
        if json::get(resource, ext.schema.id).is_none() {
            return Err(invalid_value(format!(
                "the extension \"{}\" is required",
                ext.schema.id
            )));
        }
    }
    Ok(())
}

/// Checks that no multi-valued attribute has more than one `primary: true` (RFC 7643 §2.4).
pub fn check_primary(resource: &Map<String, Value>, rt: &ResourceType) -> Result<(), ScimError> {
    for def in rt
        .schema
        .attributes
        .iter()
        .filter(|d| d.multi_valued && d.sub_attribute("primary").is_some())
    {
        if let Some(Value::Array(items)) = json::get(resource, def.name) {
            let primaries = items
                .iter()
                .filter(|item| item.as_object().and_then(|o| json::get(o, "primary")) == Some(&Value::Bool(true)))
                .count();
            if primaries > 1 {
                return Err(invalid_value(format!(
                    "\"{}\" has {primaries} values with \"primary\": true; at most one is allowed (RFC 7643 §2.4)",
                    def.name
                )));
            }
        }
    }
    Ok(())
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", Value::String(s.clone())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn invalid_syntax(detail: String) -> ScimError {
    ScimError::bad_request(ScimType::InvalidSyntax, detail)
}

fn invalid_value(detail: String) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, detail)
}

fn unknown_attribute(key: &str, rt: &ResourceType) -> ScimError {
    let hint = if key.contains('.') || key.contains(':') {
        " (a resource body nests sub-attributes and extension attributes in objects; dotted or URN-qualified names are paths, not attribute names)"
    } else {
        ""
    };
    invalid_syntax(format!(
        "unknown attribute \"{key}\" for resource type {}: not defined by {} or its extensions{hint}",
        rt.name, rt.schema.id
    ))
}

// === projection ===

/// Which attributes a response carries (RFC 7644 §3.4.2.5, RFC 7643 §7 `returned`).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// `attributes`: when non-empty, only these (plus `returned: always`).
    pub attributes: Vec<AttrPath>,
    /// `excludedAttributes`: removed unless `returned: always`.
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// Parses the comma-separated `attributes` and `excludedAttributes` parameters; every name
    /// must be an attribute of the resource type (400 `invalidValue` otherwise).
    pub fn parse(
        attributes: Option<&str>,
        excluded: Option<&str>,
        rts: &[&ResourceType],
    ) -> Result<Projection, ScimError> {
        Ok(Projection {
            attributes: parse_list(attributes, "attributes", rts)?,
            excluded: parse_list(excluded, "excludedAttributes", rts)?,
        })
    }

    /// The resource as the response carries it.
    pub fn apply(&self, resource: &Map<String, Value>, rt: &ResourceType) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in resource {
            if key.eq_ignore_ascii_case("schemas") {
                out.insert(key.clone(), value.clone());
            } else if let Some(ext) = rt.extension(key) {
                if let Value::Object(members) = value {
                    let projected = self.project_members(members, ext.schema, Some(ext.schema.id));
                    if !projected.is_empty() {
                        out.insert(key.clone(), Value::Object(projected));
                    }
                }
            } else if let Some(def) = rt.top_attribute(key) {
                if let Some(projected) = self.project_attribute(def, value, None) {
                    out.insert(key.clone(), projected);
                }
            } else if self.attributes.is_empty() {
                out.insert(key.clone(), value.clone());
            }
        }
        out
    }

    fn project_members(&self, members: &Map<String, Value>, schema: &Schema, urn: Option<&str>) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in members {
            if let Some(def) = schema.attribute(key) {
                if let Some(projected) = self.project_attribute(def, value, urn) {
                    out.insert(key.clone(), projected);
                }
            }
        }
        out
    }

    fn project_attribute(&self, def: &AttributeDef, value: &Value, urn: Option<&str>) -> Option<Value> {
        let named = |paths: &[AttrPath]| -> Vec<Option<String>> {
            paths
                .iter()
                .filter(|p| p.is(def.name) && same_container(p.urn.as_deref(), urn))
                .map(|p| p.sub.clone())
                .collect()
        };
        match def.returned {
            Returned::Never => return None,
            Returned::Always => return Some(value.clone()),
            Returned::Request | Returned::Default => {}
        }
        if !self.attributes.is_empty() || def.returned == Returned::Request {
            let wanted = named(&self.attributes);
            if wanted.is_empty() {
                return None;
            }
            if wanted.iter().any(Option::is_none) {
                return Some(value.clone());
            }
            let subs: Vec<String> = wanted.into_iter().flatten().collect();
            return keep_subs(value, |name| subs.iter().any(|s| s.eq_ignore_ascii_case(name)));
        }
        let excluded = named(&self.excluded);
        if excluded.iter().any(Option::is_none) {
            return None;
        }
        let subs: Vec<String> = excluded.into_iter().flatten().collect();
        if subs.is_empty() {
            return Some(value.clone());
        }
        keep_subs(value, |name| !subs.iter().any(|s| s.eq_ignore_ascii_case(name)))
    }
}

fn same_container(path_urn: Option<&str>, attr_urn: Option<&str>) -> bool {
    match (path_urn, attr_urn) {
        (None, None) => true,
        (Some(p), Some(a)) => p.eq_ignore_ascii_case(a),
        // A core attribute may be qualified by its core schema URN.
        (Some(p), None) => p.to_ascii_lowercase().starts_with("urn:ietf:params:scim:schemas:core:"),
        (None, Some(_)) => false,
    }
}

fn keep_subs(value: &Value, keep: impl Fn(&str) -> bool + Copy) -> Option<Value> {
    match value {
        Value::Object(members) => {
            let kept: Map<String, Value> = members
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(|item| keep_subs(item, keep)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other.clone()),
    }
}

fn parse_list(list: Option<&str>, parameter: &str, rts: &[&ResourceType]) -> Result<Vec<AttrPath>, ScimError> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // A bare extension URN names the whole extension object.
        let path = AttrPath::parse(item).map_err(|e| {
            ScimError::bad_request(ScimType::InvalidValue, format!("\"{parameter}\" entry \"{item}\": {e}"))
        })?;
        let known = rts
            .iter()
            .any(|rt| rt.resolve(&path).is_some() || rt.extension(item).is_some());
        if !known {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                format!(
                    "\"{parameter}\" names \"{item}\", which is not an attribute of {}",
                    rts.iter().map(|r| r.name).collect::<Vec<_>>().join(" or ")
                ),
            ));
        }
        out.push(path);
    }
    Ok(out)
}

// === sorting ===

/// Orders two resources by `sort_by` as its type says (RFC 7644 §3.4.2.3): a multi-valued
/// attribute sorts by its primary value, else its first; resources without a value sort last
/// in ascending order.
pub fn compare_for_sort(a: &Value, b: &Value, rt: &ResourceType, sort_by: &AttrPath) -> Ordering {
    let key = |resource: &'_ Value| {
        let located = locate(resource, rt, sort_by);
        let def = located.def;
        let chosen = located
            .values
            .iter()
            .find(|v| v.as_object().and_then(|o| json::get(o, "primary")) == Some(&Value::Bool(true)))
            .or(located.values.first())
            .copied()
            .cloned();
        let chosen = match chosen {
            Some(Value::Object(o)) => json::get(&o, "value").cloned(),
            other => other,
        };
        (
            chosen,
            def.map(|d| {
                if d.kind == AttrType::Complex {
                    d.sub_attribute("value").unwrap_or(d)
                } else {
                    d
                }
            }),
        )
    };
    let ((left, def), (right, _)) = (key(a), key(b));
    match (left, right) {
        (Some(l), Some(r)) => order(&l, &r, def).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests;
