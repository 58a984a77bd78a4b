//! A resource's intent: the latest write to each of its keys, folded in the IdP's order.

use crate::written::IntentWrite;
use scimtrail_scim::write_keys::{ADDED, DELETED, EVERYTHING};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What the IdP intends one resource to be.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Intended {
    pub resource_type: String,
    /// The application's id, or `?name` (`written::BY_NAME`) for a create no id came of.
    pub resource_id: String,
    /// Whether the IdP wants it to exist: written, and not deleted since.
    pub exists: bool,
    /// `None` when the IdP never said.
    pub active: Option<bool>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    /// The other single values the IdP set, by key (`name.givenname`, `title`,
    /// `urn:…:user:employeenumber`). Multi-valued attributes and filtered paths are not
    /// followed: an application may add or reorder their values on its own.
    pub attributes: BTreeMap<String, Value>,
    /// A group's members, by lower-case id, each with its id as written; `None` when the IdP
    /// never said who they are.
    pub members: Option<BTreeMap<String, String>>,
    /// The exchange that established each part: `exists`, `active`, `username`, an
    /// attribute's key, `members`, `members=<id>`.
    pub established: BTreeMap<String, String>,
    /// The body of the create or PUT that began its present life, as recorded (redacted):
    /// what a repair re-creates it from, with the later single values set over it.
    pub body: Option<Map<String, Value>>,
}

impl Intended {
    /// The intent of one resource from its rows (any order: they are sorted here).
    pub fn fold(resource_type: &str, resource_id: &str, rows: &[IntentWrite]) -> Intended {
        let mut sorted: Vec<&IntentWrite> = rows.iter().collect();
        sorted.sort_by(|a, b| a.order.cmp(&b.order));
        let mut intended = Intended {
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
            ..Intended::default()
        };
        for row in sorted {
            intended.apply(row);
        }
        intended
    }

    /// The exchange that established `part` (for one member, else the group's members as a
    /// whole), else the one that made the resource what it is.
    pub fn established_by(&self, part: &str) -> Option<&str> {
        let whole = part.starts_with("members=").then_some("members");
        self.established
            .get(part)
            .or_else(|| whole.and_then(|whole| self.established.get(whole)))
            .or_else(|| self.established.get("exists"))
            .map(String::as_str)
    }

    fn apply(&mut self, row: &IntentWrite) {
        let op = row.written.get("op").and_then(Value::as_str).unwrap_or_default();
        let value = row.written.get("value");
        let by = row.exchange_id.as_str();
        match row.key.as_str() {
            // A DELETE: nothing before it matters.
            EVERYTHING | DELETED if op == "delete" => {
                *self = Intended {
                    resource_type: std::mem::take(&mut self.resource_type),
                    resource_id: std::mem::take(&mut self.resource_id),
                    established: BTreeMap::from([("exists".to_owned(), by.to_owned())]),
                    ..Intended::default()
                };
            }
            DELETED => {}
            // A create or a PUT: everything anew.
            EVERYTHING => {
                *self = Intended {
                    resource_type: std::mem::take(&mut self.resource_type),
                    resource_id: std::mem::take(&mut self.resource_id),
                    exists: true,
                    established: BTreeMap::from([("exists".to_owned(), by.to_owned())]),
                    ..Intended::default()
                };
                if let Some(Value::Object(body)) = value {
                    self.set_all(body, by);
                    self.body = Some(body.clone());
                }
            }
            key => {
                // A resource the record knows only by its updates exists for the IdP.
                if !self.established.contains_key("exists") {
                    self.exists = true;
                }
                self.set(key, op, value, by);
            }
        }
    }

    /// Every attribute of a create's or a PUT's body.
    fn set_all(&mut self, body: &Map<String, Value>, by: &str) {
        for (name, value) in body {
            let name = name.to_lowercase();
            match (name.as_str(), value) {
                ("schemas" | "meta" | "id" | "groups" | "password", _) => {}
                ("members", _) => self.set("members", "replace", Some(value), by),
                (urn, Value::Object(inner)) if urn.starts_with("urn:") => {
                    for (sub, value) in inner {
                        self.set(&format!("{urn}:{}", sub.to_lowercase()), "replace", Some(value), by);
                    }
                }
                (name, value) => self.set(name, "replace", Some(value), by),
            }
        }
    }

    /// One key written: `op` (`add`, `replace`, `remove`) with `value`.
    fn set(&mut self, key: &str, op: &str, value: Option<&Value>, by: &str) {
        // Added values of a multi-valued attribute, and filtered paths, are not followed.
        if key.ends_with(ADDED) || key.contains('[') {
            return;
        }
        let removed = op == "remove" || value.is_none_or(Value::is_null);
        self.established.insert(key.to_owned(), by.to_owned());
        if key == "members" {
            self.members = Some(match (removed, value) {
                (false, Some(Value::Array(members))) => members.iter().filter_map(member_id).collect(),
                _ => BTreeMap::new(),
            });
            return;
        }
        if let Some(id) = key.strip_prefix("members=") {
            let members = self.members.get_or_insert_with(BTreeMap::new);
            match value.and_then(member_id).filter(|_| !removed) {
                Some((lower, as_written)) => members.insert(lower, as_written),
                None => members.remove(id),
            };
            return;
        }
        let text = || value.and_then(Value::as_str).map(str::to_owned).filter(|_| !removed);
        match key {
            "active" => {
                self.active = match value.filter(|_| !removed) {
                    Some(Value::Bool(active)) => Some(*active),
                    Some(Value::String(text)) => text.to_ascii_lowercase().parse().ok(),
                    _ => None,
                }
            }
            "username" => self.user_name = text(),
            "externalid" => self.external_id = text(),
            "displayname" => self.display_name = text(),
            _ => {
                // A complex value replaces the whole attribute: its sub-attributes anew.
                let inside = format!("{key}.");
                self.attributes.retain(|k, _| !k.starts_with(&inside));
                self.attributes.remove(key);
                match value.filter(|_| !removed) {
                    Some(Value::Object(subs)) => {
                        for (sub, value) in subs.iter().filter(|(_, v)| is_single(v)) {
                            self.attributes
                                .insert(format!("{inside}{}", sub.to_lowercase()), value.clone());
                        }
                    }
                    Some(value) if is_single(value) => {
                        self.attributes.insert(key.to_owned(), value.clone());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A string, number or boolean: what an application holds as one value.
fn is_single(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// A member object's id, lower case and as written.
fn member_id(member: &Value) -> Option<(String, String)> {
    let id = member
        .as_object()
        .and_then(|m| scimtrail_scim::json::get(m, "value"))
        .and_then(Value::as_str)?;
    Some((id.to_lowercase(), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::written::{intent_writes, RecordedWrite};
    use serde_json::json;

    /// The intent of one resource after these writes, each `(stands_at, method, body)`.
    fn after(resource_type: &str, writes: &[(&str, &str, Value)]) -> Intended {
        let rows: Vec<IntentWrite> = writes
            .iter()
            .flat_map(|(at, method, body)| {
                intent_writes(&RecordedWrite {
                    exchange_id: at,
                    stands_at: at,
                    method,
                    resource_type,
                    resource_id: Some("r1"),
                    body: Some(body),
                })
            })
            .collect();
        // Only the latest write to each key is kept, as the store keeps them.
        let mut latest: BTreeMap<String, IntentWrite> = BTreeMap::new();
        for row in rows {
            match latest.get(&row.key) {
                Some(kept) if kept.order > row.order => {}
                _ => {
                    latest.insert(row.key.clone(), row);
                }
            }
        }
        let rows: Vec<IntentWrite> = latest.into_values().rev().collect();
        Intended::fold(resource_type, "r1", &rows)
    }

    fn patch(ops: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
    }

    #[test]
    fn a_users_lifecycle_folds_into_what_the_idp_last_said() {
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let created = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann",
            "externalId": "x1", "active": true, "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@example.com"}], enterprise: {"employeeNumber": "701984"}});
        let deactivated = patch(json!([{"op": "replace", "path": "active", "value": false},
            {"op": "replace", "value": {"name.givenName": "Anna", "title": "Lead"}}]));
        let intended = after(
            "Users",
            &[("a", "POST", created.clone()), ("b", "PATCH", deactivated.clone())],
        );
        assert!(intended.exists);
        assert_eq!(intended.active, Some(false));
        assert_eq!(intended.user_name.as_deref(), Some("ann"));
        assert_eq!(intended.external_id.as_deref(), Some("x1"));
        let attributes: Vec<(&str, &Value)> = intended.attributes.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(
            attributes,
            [
                ("name.familyname", &json!("Lee")),
                ("name.givenname", &json!("Anna")),
                ("title", &json!("Lead")),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:employeenumber",
                    &json!("701984")
                ),
            ]
        );
        assert_eq!(intended.established_by("active"), Some("b"));
        assert_eq!(intended.established_by("username"), Some("a"));

        // Written out of order (a replay stands where its original did): the IdP's order wins.
        let reordered = after("Users", &[("b", "PATCH", deactivated), ("a", "POST", created.clone())]);
        assert_eq!(reordered.active, Some(false));

        // A DELETE ends it; a later create begins it again.
        let deleted = after("Users", &[("a", "POST", created.clone()), ("b", "DELETE", Value::Null)]);
        assert!(!deleted.exists);
        assert_eq!(deleted.established_by("exists"), Some("b"));
        let again = after(
            "Users",
            &[
                ("a", "POST", created.clone()),
                ("b", "DELETE", Value::Null),
                ("c", "POST", created),
            ],
        );
        assert!(again.exists && again.active == Some(true));

        // Entra's string booleans count as booleans.
        let stringly = after(
            "Users",
            &[(
                "a",
                "PATCH",
                patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
            )],
        );
        assert!(stringly.exists);
        assert_eq!(stringly.active, Some(false));
    }

    #[test]
    fn a_groups_members_follow_replacements_additions_and_removals() {
        let group = json!({"displayName": "Team", "members": [{"value": "U1"}, {"value": "u2"}]});
        /// Writes `(stands_at, method, body)`, and the members they leave.
        type Case = (Vec<(&'static str, &'static str, Value)>, Option<Vec<&'static str>>);
        let cases: Vec<Case> = vec![
            (vec![("a", "POST", json!({"displayName": "Team"}))], None),
            (vec![("a", "POST", group.clone())], Some(vec!["U1", "u2"])),
            (
                vec![
                    ("a", "POST", group.clone()),
                    (
                        "b",
                        "PATCH",
                        patch(json!([{"op": "remove", "path": "members[value eq \"u1\"]"},
                        {"op": "add", "path": "members", "value": [{"value": "U3"}]}])),
                    ),
                ],
                Some(vec!["u2", "U3"]),
            ),
            (
                vec![
                    ("a", "POST", group.clone()),
                    (
                        "b",
                        "PATCH",
                        patch(json!([{"op": "remove", "path": "members"},
                        {"op": "add", "path": "members", "value": [{"value": "U4"}]}])),
                    ),
                ],
                Some(vec!["U4"]),
            ),
            (
                vec![
                    ("a", "POST", group.clone()),
                    ("b", "PUT", json!({"displayName": "Team", "members": []})),
                ],
                Some(vec![]),
            ),
        ];
        for (writes, expected) in cases {
            let intended = after("Groups", &writes);
            let members: Option<Vec<String>> = intended.members.map(|m| m.into_values().collect());
            let expected: Option<Vec<String>> = expected.map(|e| e.into_iter().map(str::to_owned).collect());
            assert_eq!(members, expected, "{writes:?}");
        }
    }
}
