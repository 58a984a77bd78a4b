//! Findings: what the traffic shows went wrong although the application said it went right —
//! or said it went wrong in a way the IdP cannot read. Pure: computed from one exchange as
//! forwarded and answered.
//!
//! - `deprovision_not_applied`: a deactivation answered 2xx with a resource still active, or a
//!   deletion answered 2xx with the resource still there when read back.
//! - `attribute_not_applied`: a written value missing or different in the returned (or read
//!   back) resource, compared as the schema says (case-insensitively unless `caseExact`).
//! - `membership_not_applied`: a member added and missing, or removed and still there.
//! - `lookup_mismatch`: a filtered search whose results do not satisfy the filter, or several
//!   results for an attribute that is unique.
//! - `username_case_collision`: a lookup by userName that finds accounts whose userNames
//!   differ only in case: the IdP cannot tell them apart and may link the wrong one.
//! - `non_scim_error`: an error whose body is not a SCIM error.
//! - `bulk_partial_failure`: a bulk request with some operations failed.
//! - `shape_drift`: a request shape (see [`shape`]) a route has not seen before, once the
//!   route is past its learning period (decided by the proxy, which keeps the shapes).
//!
//! The first three and the last make the exchange `partial`: the operation did not fully
//! take effect.

use scimtrail_scim::filter::{AttrTest, CompValue, CompareOp};
use scimtrail_scim::redact::{Redaction, REDACTED};
use scimtrail_scim::schema::{AttrType, AttributeDef, Mutability, Returned, Uniqueness};
use scimtrail_scim::{json, AttrPath, Filter, PatchPath, ResourceType};
use serde_json::{json, Value};

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The kind (see the module's list).
    pub kind: &'static str,
    /// What and where, for an operator.
    pub detail: String,
}

impl Finding {
    /// As the exchange's `findings` list stores it.
    pub fn to_json(&self) -> Value {
        json!({"kind": self.kind, "detail": self.detail})
    }

    /// Whether the operation did not fully take effect (the exchange becomes `partial`).
    pub fn is_partial(&self) -> bool {
        matches!(
            self.kind,
            "deprovision_not_applied" | "attribute_not_applied" | "membership_not_applied" | "bulk_partial_failure"
        )
    }
}

/// An exchange as the findings see it: the request as forwarded and the response as the
/// application gave it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The method forwarded.
    pub method: &'a str,
    /// The path forwarded (relative to the route).
    pub path: &'a str,
    /// The filter of a search, if any.
    pub filter: Option<&'a str>,
    /// The body forwarded.
    pub request: Option<&'a Value>,
    /// The lifecycle the exchange was classified as.
    pub lifecycle: Option<&'a str>,
    /// The application's status.
    pub status: u16,
    /// The application's body, when JSON.
    pub response: Option<&'a Value>,
    /// Whether the application sent a body at all.
    pub has_body: bool,
    /// The resource as a GET read it back after the write (the route's `read_back`): it is
    /// what the application holds, and wins over what the write's answer showed.
    pub read_back: Option<&'a ReadBack>,
    /// What the route never stores: details name those attributes but never their values.
    pub redaction: &'a Redaction,
}

/// What a GET after a write found.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadBack {
    /// The resource.
    Resource(Value),
    /// 404: no such resource.
    Gone,
}

/// Every finding of one exchange.
pub fn findings(observed: &Observed<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let rt = observed
        .path
        .split('/')
        .find_map(|segment| ResourceType::by_endpoint(&format!("/{segment}")));
    if observed.status >= 400 {
        non_scim_error(observed, &mut found);
        return found;
    }
    if !(200..300).contains(&observed.status) {
        return found;
    }
    if observed.path.trim_end_matches('/').ends_with("/Bulk") {
        bulk_partial_failure(observed, &mut found);
        return found;
    }
    let Some(rt) = rt else { return found };
    let method = observed.method.to_ascii_uppercase();
    let (returned, how) = match observed.read_back {
        Some(ReadBack::Resource(resource)) => (Some(resource), "read back"),
        _ => (observed.response.filter(|r| r.get("id").is_some()), "returned"),
    };
    if method == "DELETE" && matches!(observed.read_back, Some(ReadBack::Resource(_))) {
        found.push(Finding {
            kind: "deprovision_not_applied",
            detail: "the deletion was answered with success, but the resource is still there when read back".to_owned(),
        });
    }
    if let (Some(returned), true) = (returned, matches!(method.as_str(), "POST" | "PUT" | "PATCH")) {
        if observed.lifecycle == Some("deactivate") && returned.get("active") == Some(&Value::Bool(true)) {
            found.push(Finding {
                kind: "deprovision_not_applied",
                detail: format!("the deactivation was answered with success, but the user {how} is still active"),
            });
        }
        let written = written_values(&method, observed.request, rt);
        attribute_not_applied(&written, returned, rt, observed.redaction, &mut found);
        if rt.name == "Group" && method == "PATCH" {
            membership_not_applied(observed.request, returned, &mut found);
        }
    }
    if method == "GET" {
        if let (Some(filter), Some(list)) = (observed.filter, observed.response) {
            lookup_mismatch(filter, list, rt, observed.redaction, &mut found);
        }
    }
    found
}

fn non_scim_error(observed: &Observed<'_>, found: &mut Vec<Finding>) {
    let scim = observed.response.is_some_and(|body| {
        let declares = body.get("schemas").and_then(Value::as_array).is_some_and(|schemas| {
            schemas
                .iter()
                .any(|s| s.as_str() == Some(scimtrail_scim::error::ERROR_SCHEMA))
        });
        declares && body.get("status").is_some()
    });
    if !scim {
        let what = match (observed.response, observed.has_body) {
            (Some(_), _) => "a JSON body that is not a SCIM error (no Error schema or no status)",
            (None, true) => "a body that is not JSON",
            (None, false) => "no body",
        };
        found.push(Finding {
            kind: "non_scim_error",
            detail: format!("the application answered {} with {what}", observed.status),
        });
    }
}

fn bulk_partial_failure(observed: &Observed<'_>, found: &mut Vec<Finding>) {
    let Some(operations) = observed
        .response
        .and_then(|r| r.get("Operations"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let failed: Vec<String> = operations
        .iter()
        .enumerate()
        .filter_map(|(index, op)| {
            let status = op.get("status").and_then(|s| match s {
                Value::String(text) => text.parse::<u16>().ok(),
                other => other.as_u64().and_then(|n| u16::try_from(n).ok()),
            })?;
            (status >= 400).then(|| {
                let id = op.get("bulkId").and_then(Value::as_str).unwrap_or("-");
                format!("#{index} (bulkId {id}) {status}")
            })
        })
        .collect();
    if !failed.is_empty() {
        found.push(Finding {
            kind: "bulk_partial_failure",
            detail: format!(
                "{} of {} bulk operations failed: {}",
                failed.len(),
                operations.len(),
                failed.join(", ")
            ),
        });
    }
}

/// What a write sets: (canonical path, attribute definition, value). Only simple values and
/// complex ones without multi-valued parts: what can be compared one for one.
fn written_values(
    method: &str,
    request: Option<&Value>,
    rt: &ResourceType,
) -> Vec<(String, &'static AttributeDef, Value)> {
    let mut written = Vec::new();
    let Some(body) = request.and_then(Value::as_object) else {
        return written;
    };
    let mut note = |path: AttrPath, value: &Value| {
        let Some(resolved) = rt.resolve(&path) else { return };
        let leaf = resolved.leaf();
        let comparable = !leaf.multi_valued
            && leaf.kind != AttrType::Complex
            && leaf.mutability == Mutability::ReadWrite
            && leaf.returned != Returned::Never;
        if comparable && !value.is_null() {
            written.push((resolved.canonical(), leaf, value.clone()));
        }
    };
    let resource_like = |object: &serde_json::Map<String, Value>, note: &mut dyn FnMut(AttrPath, &Value)| {
        for (key, value) in object {
            if let Some(extension) = rt.extension(key) {
                for (name, inner) in value.as_object().into_iter().flatten() {
                    note(
                        AttrPath {
                            urn: Some(extension.schema.id.to_owned()),
                            name: name.clone(),
                            sub: None,
                        },
                        inner,
                    );
                }
                continue;
            }
            match value {
                Value::Object(sub)
                    if rt
                        .top_attribute(key)
                        .is_some_and(|d| d.kind == AttrType::Complex && !d.multi_valued) =>
                {
                    for (name, inner) in sub {
                        note(
                            AttrPath {
                                urn: None,
                                name: key.clone(),
                                sub: Some(name.clone()),
                            },
                            inner,
                        );
                    }
                }
                _ => note(AttrPath::named(key), value),
            }
        }
    };
    match method {
        "POST" | "PUT" => resource_like(body, &mut note),
        "PATCH" => {
            for operation in json::get(body, "Operations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let op = operation.get("op").and_then(Value::as_str).unwrap_or_default();
                if !(op.eq_ignore_ascii_case("add") || op.eq_ignore_ascii_case("replace")) {
                    continue;
                }
                let Some(value) = operation.get("value") else { continue };
                match operation.get("path").and_then(Value::as_str) {
                    None => {
                        if let Some(object) = value.as_object() {
                            resource_like(object, &mut note);
                        }
                    }
                    Some(path) => {
                        if let Ok(path) = PatchPath::parse(path) {
                            if path.filter.is_none() {
                                note(path.attr, value);
                            }
                        }
                    }
                }
            }
        }
        _ => {}
    }
    written
}

fn attribute_not_applied(
    written: &[(String, &'static AttributeDef, Value)],
    returned: &Value,
    rt: &ResourceType,
    redaction: &Redaction,
    found: &mut Vec<Finding>,
) {
    for (path, def, sent) in written {
        // Compared as sent and returned, but a redacted one never shown: the record holds
        // only markers, and details are stored and logged.
        let redacted = redaction.names(path);
        let Ok(attr) = AttrPath::parse(path) else { continue };
        let Some(resolved) = rt.resolve(&attr) else { continue };
        let value = returned
            .as_object()
            .and_then(|o| json::attribute(o, resolved.extension.map(|e| e.id), resolved.attr.name))
            .and_then(|v| match resolved.sub {
                Some(sub) => v.as_object().and_then(|o| json::get(o, sub.name)),
                None => Some(v),
            });
        match value {
            None => found.push(missing(path, sent, redacted)),
            Some(value) if redacted && !same(def, sent, value) => found.push(Finding {
                kind: "attribute_not_applied",
                detail: format!(
                    "{path} was written but the application returned another value ({path} is redacted: its values are never stored)"
                ),
            }),
            Some(value) if !same(def, sent, value) => found.push(Finding {
                kind: "attribute_not_applied",
                detail: format!("{path} was written as {sent} but the application returned {value}"),
            }),
            Some(_) => {}
        }
    }
}

fn missing(path: &str, sent: &Value, redacted: bool) -> Finding {
    let detail = if redacted {
        format!("{path} was written but the application returned no value for it ({path} is redacted: its values are never stored)")
    } else {
        format!("{path} was written as {sent} but the application returned no value for it")
    };
    Finding {
        kind: "attribute_not_applied",
        detail,
    }
}

/// Equal as the schema compares: strings case-insensitively unless `caseExact`.
fn same(def: &AttributeDef, sent: &Value, returned: &Value) -> bool {
    match (sent, returned) {
        (Value::String(a), Value::String(b)) if !def.case_exact => a.eq_ignore_ascii_case(b),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => sent == returned,
    }
}

fn membership_not_applied(request: Option<&Value>, returned: &Value, found: &mut Vec<Finding>) {
    let Some(operations) = request.and_then(|b| b.get("Operations")).and_then(Value::as_array) else {
        return;
    };
    // A group returned without members (`excludedAttributes`, or a lean 200) shows nothing.
    let Some(members) = returned.get("members").and_then(Value::as_array) else {
        return;
    };
    let present = |id: &str| {
        members
            .iter()
            .any(|m| m.get("value").and_then(Value::as_str) == Some(id))
    };
    let mut added: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for operation in operations {
        let op = operation
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let path = operation.get("path").and_then(Value::as_str).unwrap_or_default();
        let Ok(parsed) = PatchPath::parse(path) else { continue };
        if !parsed.attr.is("members") {
            continue;
        }
        match (op.as_str(), &parsed.filter) {
            ("add", None) => {
                for member in operation.get("value").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(id) = member.get("value").and_then(Value::as_str) {
                        removed.retain(|r| r != id);
                        added.push(id.to_owned());
                    }
                }
            }
            ("remove", Some(filter)) => {
                if let Some(id) = value_eq(filter) {
                    added.retain(|a| a != &id);
                    removed.push(id);
                }
            }
            _ => {}
        }
    }
    let missing: Vec<&String> = added.iter().filter(|id| !present(id)).collect();
    let remaining: Vec<&String> = removed.iter().filter(|id| present(id)).collect();
    if !missing.is_empty() || !remaining.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("added but missing: {}", join(&missing)));
        }
        if !remaining.is_empty() {
            parts.push(format!("removed but still members: {}", join(&remaining)));
        }
        found.push(Finding {
            kind: "membership_not_applied",
            detail: parts.join("; "),
        });
    }
}

fn join(ids: &[&String]) -> String {
    ids.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// `value eq "x"` → `x`.
fn value_eq(filter: &Filter) -> Option<String> {
    match filter {
        Filter::Attr {
            path,
            test: AttrTest::Compare(CompareOp::Eq, CompValue::String(id)),
        } if path.is("value") => Some(id.clone()),
        _ => None,
    }
}

fn lookup_mismatch(filter: &str, list: &Value, rt: &ResourceType, redaction: &Redaction, found: &mut Vec<Finding>) {
    let Ok(parsed) = Filter::parse(filter) else { return };
    // Details are stored and logged: a value compared to a redacted attribute never appears.
    let filter = redaction.redact_filter(filter).unwrap_or_else(|| filter.to_owned());
    let Some(resources) = list.get("Resources").and_then(Value::as_array) else {
        return;
    };
    let wrong: Vec<String> = resources
        .iter()
        .filter(|resource| !parsed.matches(resource, rt))
        .map(|resource| resource.get("id").and_then(Value::as_str).unwrap_or("-").to_owned())
        .collect();
    if !wrong.is_empty() {
        found.push(Finding {
            kind: "lookup_mismatch",
            detail: format!(
                "{} of {} results do not satisfy the filter {filter:?}: {}",
                wrong.len(),
                resources.len(),
                wrong.join(", ")
            ),
        });
    }
    // `attr eq value` on an attribute unique in the application: at most one result.
    if let Filter::Attr {
        path,
        test: AttrTest::Compare(CompareOp::Eq, CompValue::String(value)),
    } = &parsed
    {
        let Some(resolved) = rt.resolve(path) else { return };
        let value = if redaction.names(&path.to_string()) {
            REDACTED
        } else {
            value.as_str()
        };
        let unique = resolved.sub.is_none() && resolved.attr.uniqueness != Uniqueness::None;
        if unique && resources.len() > 1 {
            found.push(Finding {
                kind: "lookup_mismatch",
                detail: format!(
                    "{} results for {} eq {value:?}, an attribute the schema says is unique",
                    resources.len(),
                    resolved.canonical()
                ),
            });
        }
        if resolved.attr.name == "userName" {
            let names: Vec<&str> = resources
                .iter()
                .filter_map(|r| r.get("userName").and_then(Value::as_str))
                .collect();
            let collides = names
                .iter()
                .enumerate()
                .any(|(i, a)| names[i + 1..].iter().any(|b| a != b && a.eq_ignore_ascii_case(b)));
            if collides {
                found.push(Finding {
                    kind: "username_case_collision",
                    detail: format!(
                        "the lookup of userName {value:?} found accounts whose userNames differ only in case ({}); userName is case-insensitive (RFC 7643 §4.1.1), so the IdP cannot tell them apart",
                        names.join(", ")
                    ),
                });
            }
        }
    }
}

/// A request's shape: method, endpoint, and — without any value — the filter of a search or
/// the operations and paths of a PATCH. Lower case, so that casing alone is no drift.
/// `None` for what is not provisioning (discovery, unknown endpoints).
pub fn shape(method: &str, path: &str, filter: Option<&str>, body: Option<&Value>) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segments
        .iter()
        .position(|s| ResourceType::by_endpoint(&format!("/{s}")).is_some() || *s == "Bulk")?;
    let mut out = format!("{} /{}", method.to_ascii_uppercase(), segments[at]);
    match segments.get(at + 1) {
        Some(&".search") => out.push_str("/.search"),
        Some(_) => out.push_str("/{id}"),
        None => {}
    }
    if let Some(filter) = filter.and_then(|f| Filter::parse(f).ok()) {
        out.push_str(" filter ");
        out.push_str(&filter_shape(&filter));
    }
    if method.eq_ignore_ascii_case("PATCH") {
        let mut operations: Vec<String> = body
            .and_then(|b| b.get("Operations"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|operation| {
                let op = operation
                    .get("op")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_ascii_lowercase();
                match operation.get("path").and_then(Value::as_str) {
                    Some(path) => match PatchPath::parse(path) {
                        Ok(parsed) => {
                            let mut target = parsed.attr.clone();
                            target.sub = None;
                            let filter = parsed
                                .filter
                                .as_ref()
                                .map(|f| format!("[{}]", filter_shape(f)))
                                .unwrap_or_default();
                            let sub = parsed.attr.sub.as_ref().map(|s| format!(".{s}")).unwrap_or_default();
                            format!("{op}:{target}{filter}{sub}")
                        }
                        Err(_) => format!("{op}:?"),
                    },
                    None => {
                        let mut keys: Vec<&str> = operation
                            .get("value")
                            .and_then(Value::as_object)
                            .map(|v| v.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        keys.sort_unstable();
                        format!("{op}:{{{}}}", keys.join(","))
                    }
                }
            })
            .collect();
        operations.sort();
        operations.dedup();
        out.push(' ');
        out.push_str(&operations.join(" "));
    }
    Some(out.to_ascii_lowercase())
}

fn filter_shape(filter: &Filter) -> String {
    let test = |test: &AttrTest| match test {
        AttrTest::Present => "pr".to_owned(),
        AttrTest::Compare(op, _) => op.as_str().to_owned(),
    };
    match filter {
        Filter::Attr { path, test: t } => format!("{path} {}", test(t)),
        Filter::ValuePath { path, filter, then } => {
            let tail = then
                .as_ref()
                .map(|then| format!(".{} {}", then.sub, test(&then.test)))
                .unwrap_or_default();
            format!("{path}[{}]{tail}", filter_shape(filter))
        }
        Filter::And(left, right) => format!("({} and {})", filter_shape(left), filter_shape(right)),
        Filter::Or(left, right) => format!("({} or {})", filter_shape(left), filter_shape(right)),
        Filter::Not(inner) => format!("not ({})", filter_shape(inner)),
    }
}

#[cfg(test)]
mod tests;
