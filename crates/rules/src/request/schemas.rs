//! The `schemas` list of a written resource: SCIM 1.1 and made-up URNs repaired, the
//! extension object moving with its URN (N11), and every extension present declared (N12).

use super::written::Written;
use super::Working;
use crate::changes::Changes;
use crate::resource::pointer_token;
use scimtrail_scim::json;
use scimtrail_scim::schema::{ResourceType, ENTERPRISE_USER_SCHEMA};
use serde_json::{json, Map, Value};

impl Working {
    // === N11 ===

    pub(super) fn repair_schema_urns(&mut self) {
        let Some(rt) = self.resource_type else { return };
        self.each_written(|written, changes| {
            if let Written::Body(body) = written {
                repair_schema_urns(body, rt, changes);
            }
        });
    }

    // === N12 ===

    pub(super) fn declare_extension_schemas(&mut self) {
        self.each_written(|written, changes| {
            let Written::Body(body) = written else { return };
            // A legacy core object (`urn:scim:schemas:core:1.0`) is no extension: declared, the
            // schema repair would take it for the core schema on the next pass.
            let extensions: Vec<String> = body
                .iter()
                .filter(|(k, v)| k.starts_with("urn:") && v.is_object() && !is_legacy_core(k))
                .map(|(k, _)| k.clone())
                .collect();
            let schemas_key = json::find_key(body, "schemas")
                .cloned()
                .unwrap_or_else(|| "schemas".to_owned());
            let before = body.get(&schemas_key).cloned();
            let mut urns: Vec<Value> = before.as_ref().and_then(Value::as_array).cloned().unwrap_or_default();
            for extension in extensions {
                if !urns
                    .iter()
                    .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(&extension)))
                {
                    urns.push(json!(extension));
                }
            }
            let after = Value::Array(urns);
            if Some(&after) != before.as_ref() {
                body.insert(schemas_key.clone(), after.clone());
                changes.record(format!("/{schemas_key}"), before, Some(after));
            }
        });
    }
}

fn repair_schema_urns(body: &mut Map<String, Value>, rt: &ResourceType, changes: &mut Changes) {
    let schemas_key = json::find_key(body, "schemas")
        .cloned()
        .unwrap_or_else(|| "schemas".to_owned());
    let before = body.get(&schemas_key).cloned();
    let declared: Vec<String> = before
        .as_ref()
        .and_then(Value::as_array)
        .map(|urns| urns.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let mut repaired: Vec<String> = Vec::new();
    for urn in &declared {
        let canonical = if is_legacy_core(urn) {
            Some(rt.schema.id.to_owned())
        } else if is_legacy_enterprise(urn) && rt.extension(ENTERPRISE_USER_SCHEMA).is_some() {
            // The extension object moves to the RFC key with its URN.
            if let Some(object) = body.remove(urn) {
                changes.record(format!("/{}", pointer_token(urn)), Some(object.clone()), None);
                changes.record(
                    format!("/{}", pointer_token(ENTERPRISE_USER_SCHEMA)),
                    None,
                    Some(object.clone()),
                );
                body.insert(ENTERPRISE_USER_SCHEMA.to_owned(), object);
            }
            Some(ENTERPRISE_USER_SCHEMA.to_owned())
        } else if urn.eq_ignore_ascii_case(rt.schema.id) {
            Some(rt.schema.id.to_owned())
        } else if let Some(extension) = rt.extension(urn) {
            Some(extension.schema.id.to_owned())
        } else if urn.starts_with("urn:") {
            // A custom extension: the application may know it.
            Some(urn.clone())
        } else {
            // A vendor marker such as http://schemas.microsoft.com/…/ADSCIM/2.0/Group.
            None
        };
        if let Some(canonical) = canonical {
            if !repaired.iter().any(|u| u.eq_ignore_ascii_case(&canonical)) {
                repaired.push(canonical);
            }
        }
    }
    if !repaired.iter().any(|u| u == rt.schema.id) {
        repaired.insert(0, rt.schema.id.to_owned());
    }
    let after = json!(repaired);
    if Some(&after) != before.as_ref() {
        changes.record(format!("/{schemas_key}"), before, Some(after.clone()));
        body.insert(schemas_key, after);
    }
}

fn is_legacy_core(urn: &str) -> bool {
    ["urn:scim:schemas:core:1.0", "urn:scim:schemas:core:2.0"]
        .iter()
        .any(|legacy| legacy.eq_ignore_ascii_case(urn))
}

fn is_legacy_enterprise(urn: &str) -> bool {
    [
        "urn:scim:schemas:extension:enterprise:1.0",
        "urn:scim:schemas:extension:enterprise:2.0",
    ]
    .iter()
    .any(|legacy| legacy.eq_ignore_ascii_case(urn))
}
