//! What the application must not receive: read-only attributes the client sent (N14),
//! `null`-valued attributes (N15), and a create's placeholder password (N16).

use super::written::Written;
use super::Working;
use crate::resource::{drop_null_members, pointer_token};
use scimtrail_scim::json;
use serde_json::Value;

impl Working {
    // === N14 ===

    pub(super) fn strip_read_only(&mut self) {
        let Some(rt) = self.resource_type else { return };
        let resource_id = self.resource_id.clone();
        self.each_written(|written, changes| match written {
            Written::Body(body) => {
                let mut read_only = vec!["meta"];
                if rt.name == "User" {
                    read_only.push("groups");
                }
                for name in read_only {
                    if let Some(key) = json::find_key(body, name).cloned() {
                        if let Some(value) = body.remove(&key) {
                            changes.record(format!("/{key}"), Some(value), None);
                        }
                    }
                }
            }
            Written::Operation(operation, pointer) => {
                // A path-less value's `id`, when it is the resource's own.
                if json::get(operation, "path").is_some() {
                    return;
                }
                let Some(value) = json::get_mut(operation, "value").and_then(Value::as_object_mut) else {
                    return;
                };
                let Some(id_key) = json::find_key(value, "id").cloned() else {
                    return;
                };
                if value.get(&id_key).and_then(Value::as_str) == resource_id.as_deref() {
                    if let Some(id) = value.remove(&id_key) {
                        changes.record(format!("{pointer}/value/{id_key}"), Some(id), None);
                    }
                }
            }
        });
    }

    // === N15 ===

    pub(super) fn drop_nulls(&mut self) {
        self.each_written(|written, changes| {
            let Written::Body(body) = written else { return };
            drop_null_members(body, changes, |key| format!("/{}", pointer_token(key)));
            for (key, value) in body.iter_mut().filter(|(k, _)| k.starts_with("urn:")) {
                if let Value::Object(extension) = value {
                    let here = format!("/{}", pointer_token(key));
                    drop_null_members(extension, changes, |key| format!("{here}/{}", pointer_token(key)));
                }
            }
        });
    }

    // === N16 ===

    pub(super) fn strip_placeholder_password(&mut self) {
        let creates_a_user = scimtrail_scim::endpoint::is_create(&self.request.method, &self.request.path)
            && self.resource_type.is_some_and(|rt| rt.name == "User");
        if !creates_a_user {
            return;
        }
        let Some(body) = self.request.body.as_mut().and_then(Value::as_object_mut) else {
            return;
        };
        if let Some(key) = json::find_key(body, "password").cloned() {
            if let Some(password) = body.remove(&key) {
                self.changes
                    .record(format!("/{}", pointer_token(&key)), Some(password), None);
            }
        }
    }
}
